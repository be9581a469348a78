"""Semantic similarity of answer and reference: cosine of their embeddings.

Kept apart from the lexical metrics because it needs a model: any object with
`encode(texts) -> array (n, dim)`, such as `llmops.embedding.dense.DenseEncoder`. The
texts of a whole batch are encoded once each (a reference shared by many items too),
in model batches, and compared row by row in numpy; the similarity does not rely on
the encoder normalising its vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from llmops_evaluation.metrics.spec import MetricSpec

EMBEDDING_SIMILARITY = "embedding_similarity"
EMBEDDING_METRICS: dict[str, MetricSpec] = {
    EMBEDDING_SIMILARITY: MetricSpec(
        EMBEDDING_SIMILARITY,
        higher_is_better=True,
        needs_reference=True,
        description="Cosine similarity of answer and reference embeddings.",
    )
}


class TextEncoder(Protocol):
    """What the metric needs of an embedding model (`DenseEncoder` has it)."""

    def encode(self, texts: Sequence[str]) -> npt.NDArray[Any]:
        """One row per text, in input order."""
        ...


def embedding_similarity(
    encoder: TextEncoder,
    answers: Sequence[str],
    references: Sequence[str],
    *,
    batch_size: int = 64,
) -> list[float]:
    """Cosine similarity of each answer with its reference (aligned lists), in -1..1.

    Each distinct text is encoded once, `batch_size` texts per `encode` call.
    """
    if len(answers) != len(references):
        msg = f"{len(answers)} answers but {len(references)} references"
        raise ValueError(msg)
    if batch_size < 1:
        msg = f"batch_size must be positive, got {batch_size}"
        raise ValueError(msg)
    if not answers:
        return []
    row_of: dict[str, int] = {}
    for text in (*answers, *references):
        row_of.setdefault(text, len(row_of))
    texts = list(row_of)
    vectors = np.concatenate(
        [
            np.asarray(encoder.encode(texts[start : start + batch_size]), dtype=np.float64)
            for start in range(0, len(texts), batch_size)
        ]
    )
    if vectors.shape[0] != len(texts):
        msg = f"the encoder returned {vectors.shape[0]} vectors for {len(texts)} texts"
        raise ValueError(msg)
    answer_rows = vectors[[row_of[text] for text in answers]]
    reference_rows = vectors[[row_of[text] for text in references]]
    return cosine_similarities(answer_rows, reference_rows)


def cosine_similarities(first: npt.ArrayLike, second: npt.ArrayLike) -> list[float]:
    """Row-wise cosine similarity of two (n, dim) arrays; 0.0 where a row is all zeros
    (an empty text embeds to zeros with some models, and is then similar to nothing)."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        msg = f"expected two arrays of the same (n, dim) shape, got {a.shape} and {b.shape}"
        raise ValueError(msg)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    similarity = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return [float(value) for value in np.clip(similarity, -1.0, 1.0)]
