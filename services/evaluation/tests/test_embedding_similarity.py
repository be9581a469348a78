"""Embedding similarity with a tiny fake encoder: cosine, batching, shared texts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from llmops_evaluation.metrics import EMBEDDING_METRICS, cosine_similarities, embedding_similarity


class LetterCounts:
    """Embeds a text as its counts of a, b and c (not normalised); records each call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return np.array([[text.count(letter) for letter in "abc"] for text in texts], np.float32)


def test_similarity_is_the_cosine_of_the_embeddings() -> None:
    encoder = LetterCounts()
    similarities = embedding_similarity(
        encoder, ["aab", "abc", "aaa", "xyz"], ["aab", "cba", "bbb", "abc"]
    )
    assert similarities == pytest.approx([1.0, 1.0, 0.0, 0.0])
    # (2, 1, 0) against (1, 1, 0): 3 / (sqrt(5) * sqrt(2))
    assert embedding_similarity(encoder, ["aab"], ["ab"]) == pytest.approx(
        [3 / (math.sqrt(5) * math.sqrt(2))]
    )
    assert embedding_similarity(encoder, [], []) == []


def test_texts_are_encoded_once_each_in_batches_of_the_given_size() -> None:
    encoder = LetterCounts()
    answers = ["a", "b", "c", "a"]
    references = ["ab", "ab", "ab", "ab"]  # one reference shared by every item
    similarities = embedding_similarity(encoder, answers, references, batch_size=2)
    assert [len(call) for call in encoder.calls] == [2, 2]
    assert sorted(text for call in encoder.calls for text in call) == ["a", "ab", "b", "c"]
    assert similarities == pytest.approx(
        [1 / math.sqrt(2), 1 / math.sqrt(2), 0.0, 1 / math.sqrt(2)]
    )


def test_zero_vectors_and_bad_input_are_handled() -> None:
    assert cosine_similarities([[0.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [-2.0, 0.0]]) == [0.0, -1.0]
    with pytest.raises(ValueError, match="2 answers but 1 references"):
        embedding_similarity(LetterCounts(), ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="batch_size must be positive"):
        embedding_similarity(LetterCounts(), ["a"], ["a"], batch_size=0)
    with pytest.raises(ValueError, match="same"):
        cosine_similarities([[1.0, 0.0]], [[1.0, 0.0, 0.0]])


def test_the_metric_is_described() -> None:
    spec = EMBEDDING_METRICS["embedding_similarity"]
    assert spec.higher_is_better
    assert spec.needs_reference
