"""The in-memory index of a collection finds exact and near duplicates among its live
documents, follows new versions and deletions, and grows past its first allocation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace

from llmops_ingestion.collection_index import CollectionIndex, DocumentRecord
from llmops_ingestion.dedup import MinHashConfig, MinHasher, content_fingerprint

HASHER = MinHasher()
WORDS = [
    "refund",
    "invoice",
    "billing",
    "address",
    "account",
    "password",
    "reset",
    "shipping",
    "order",
    "tracking",
    "warranty",
    "return",
    "label",
    "exchange",
    "delivery",
    "courier",
    "subscription",
    "plan",
    "upgrade",
    "cancel",
]


def text(seed: str, words: int = 200) -> str:
    picks = (hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(words))
    return " ".join(WORDS[int.from_bytes(pick[:4], "big") % len(WORDS)] for pick in picks)


def with_changed(body: str, positions: Iterable[int]) -> str:
    words = body.split()
    for position in positions:
        words[position] = "changed"
    return " ".join(words)


def put(index: CollectionIndex, document_id: str, body: str, *, version: int = 1) -> None:
    signature = HASHER.signature(body)
    index.put(record(document_id, body, version=version), signature, HASHER.band_keys(signature))


def record(document_id: str, body: str, *, version: int = 1) -> DocumentRecord:
    return DocumentRecord(
        tenant="acme",
        collection="kb",
        document_id=document_id,
        source=f"{document_id}.md",
        version=version,
        content_sha256="-",
        fingerprint=content_fingerprint(body),
        request_event_id="-",
        deleted=False,
    )


def near(
    index: CollectionIndex, body: str, *, excluding: str = "new", threshold: float = 0.8
) -> tuple[DocumentRecord, float] | None:
    signature = HASHER.signature(body)
    return index.near_duplicate(
        signature, HASHER.band_keys(signature), excluding=excluding, threshold=threshold
    )


def test_an_exact_duplicate_is_found_by_its_normalised_text_but_not_itself() -> None:
    index = CollectionIndex("acme", "kb", 0, MinHashConfig())
    put(index, "a", "Refund policy\n\nRefunds within 30 days.")
    assert index.exact_duplicate(
        content_fingerprint("refund policy refunds within 30 days."), excluding="new"
    ) == record("a", "Refund policy\n\nRefunds within 30 days.")
    assert (
        index.exact_duplicate(content_fingerprint("Refunds within 60 days."), excluding="x") is None
    )
    assert (
        index.exact_duplicate(
            content_fingerprint("Refund policy Refunds within 30 days."), excluding="a"
        )
        is None
    )


def test_a_near_duplicate_is_the_most_similar_document_above_the_threshold() -> None:
    index = CollectionIndex("acme", "kb", 0, MinHashConfig())
    original = text("original", words=400)
    close = with_changed(original, range(20, 400, 70))  # 6 words: ~8 % of shingles
    closer = with_changed(original, [200])
    put(index, "unrelated", text("something else"))
    put(index, "close", close)
    put(index, "closer", closer)

    found = near(index, original)
    assert found is not None
    best, similarity = found
    assert best.document_id == "closer"
    assert similarity == MinHasher.similarity(HASHER.signature(original), HASHER.signature(closer))
    assert near(index, original, threshold=1.01) is None
    second = near(index, original, excluding="closer")
    assert second is not None
    assert second[0].document_id == "close"
    assert near(index, text("yet another topic")) is None


def test_ties_go_to_the_first_document_by_id() -> None:
    index = CollectionIndex("acme", "kb", 0, MinHashConfig())
    body = text("tie")
    put(index, "b", body)
    put(index, "a", body)
    found = near(index, body)
    assert found is not None
    assert found[0].document_id == "a"
    assert found[1] == 1.0


def test_a_new_version_replaces_the_old_one_and_a_deletion_removes_it() -> None:
    index = CollectionIndex("acme", "kb", 0, MinHashConfig())
    first, second = text("first"), text("second")
    put(index, "doc", first)
    put(index, "doc", second, version=2)
    assert len(index) == 1
    assert near(index, first) is None
    assert index.exact_duplicate(content_fingerprint(first), excluding="new") is None
    assert near(index, second) is not None

    index.put(replace(record("doc", second), version=3, deleted=True), [], [])
    assert len(index) == 0
    assert near(index, second) is None
    assert index.exact_duplicate(content_fingerprint(second), excluding="new") is None


def test_it_grows_past_its_first_allocation() -> None:
    index = CollectionIndex("acme", "kb", 0, MinHashConfig())
    for n in range(600):
        put(index, f"doc-{n:03d}", text(f"doc {n}"))
    assert len(index) == 600
    for n in (0, 255, 256, 599):
        found = near(index, text(f"doc {n}"))
        assert found is not None
        assert found[0].document_id == f"doc-{n:03d}"


def test_signatures_of_another_minhash_shape_are_not_compared() -> None:
    index = CollectionIndex("acme", "kb", 0, MinHashConfig(num_perm=64, bands=16))
    put(index, "doc", text("shape"))  # 128 values: kept for exact lookups only
    assert near(index, text("shape")) is None
    assert index.exact_duplicate(content_fingerprint(text("shape")), excluding="new") is not None
