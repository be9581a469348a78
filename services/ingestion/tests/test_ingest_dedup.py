"""Duplicate detection: exact fingerprints ignore formatting; MinHash finds near
duplicates, ignores unrelated text and gives the same values in every process."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from llmops_ingestion.dedup import MinHashConfig, MinHasher, content_fingerprint

VOCABULARY = (
    "the model retrieves documents before answering questions about policies while "
    "engineers deploy pipelines that index chunks embed vectors rank passages and "
    "measure latency across tenants regions releases budgets prompts evaluations "
    "feedback traces alerts dashboards owners teams customers contracts invoices"
)


def prose(seed: str, words: int = 300) -> str:
    """Deterministic text of `words` words drawn from a shared vocabulary."""
    vocabulary = VOCABULARY.split()
    picks = (hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(words))
    return " ".join(vocabulary[int.from_bytes(pick[:4], "big") % len(vocabulary)] for pick in picks)


def with_words_changed(text: str, positions: tuple[int, ...]) -> str:
    words = text.split()
    for position in positions:
        words[position] = "CHANGED"
    return " ".join(words)


def test_fingerprint_ignores_case_and_whitespace_but_not_words() -> None:
    fingerprint = content_fingerprint("Refund Policy\n\nRefunds   within 30 days.")
    assert fingerprint == content_fingerprint("refund policy refunds within 30 days.  ")
    assert fingerprint != content_fingerprint("Refund policy: refunds within 60 days.")
    assert fingerprint == hashlib.sha256(b"refund policy refunds within 30 days.").hexdigest()


def test_near_duplicates_are_similar_and_share_a_band() -> None:
    hasher = MinHasher()
    original = prose("handbook")
    edited = with_words_changed(original, (40, 150, 260))
    a, b = hasher.signature(original), hasher.signature(edited)
    assert MinHasher.similarity(a, b) >= 0.8
    assert set(hasher.band_keys(a)) & set(hasher.band_keys(b))


def test_unrelated_texts_are_dissimilar_and_share_no_band() -> None:
    hasher = MinHasher()
    a, b = hasher.signature(prose("handbook")), hasher.signature(prose("invoice"))
    assert MinHasher.similarity(a, b) < 0.2
    assert not set(hasher.band_keys(a)) & set(hasher.band_keys(b))


def test_identical_texts_have_identical_signatures_ignoring_case() -> None:
    hasher = MinHasher()
    text = prose("same")
    assert hasher.signature(text) == hasher.signature(text.upper())
    assert MinHasher.similarity(hasher.signature(text), hasher.signature(text)) == 1.0


def test_signature_shape_and_values_fit_storage() -> None:
    config = MinHashConfig(num_perm=64, bands=16)
    hasher = MinHasher(config)
    signature = hasher.signature(prose("shape"))
    keys = hasher.band_keys(signature)
    assert len(signature) == 64
    assert all(isinstance(value, int) and 0 <= value < 2**32 for value in signature)
    assert len(keys) == 16
    assert [key.split(":")[0] for key in keys] == [str(band) for band in range(16)]


def test_texts_shorter_than_a_shingle_are_one_shingle() -> None:
    hasher = MinHasher()
    assert hasher.signature("hello world") == hasher.signature("Hello  WORLD")
    assert hasher.signature("hello world") != hasher.signature("hello there")


def test_different_seeds_give_different_permutations() -> None:
    text = prose("seeded")
    assert MinHasher(MinHashConfig(seed=1)).signature(text) != MinHasher(
        MinHashConfig(seed=2)
    ).signature(text)


def test_signatures_are_stable_across_instances_and_processes() -> None:
    text = prose("stable")
    here = MinHasher().signature(text)
    assert MinHasher().signature(text) == here
    script = (
        "import json, sys; from llmops_ingestion.dedup import MinHasher; "
        "print(json.dumps(MinHasher().signature(sys.stdin.read())))"
    )
    # A fresh interpreter with a different hash seed: Python's hash() would differ there.
    other = subprocess.run(
        [sys.executable, "-c", script],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    )
    assert json.loads(other.stdout) == here


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_perm": 128, "bands": 30}, "multiple of bands"),
        ({"num_perm": 0}, "positive"),
        ({"shingle_words": 0}, "positive"),
    ],
)
def test_invalid_configs_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MinHashConfig(**kwargs)


def test_mismatched_signatures_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="equal length"):
        MinHasher.similarity([1, 2, 3], [1, 2])
