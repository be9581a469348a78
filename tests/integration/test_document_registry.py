"""The document registry's in-memory index stays true to the database: loaded from it,
kept current by its own writes, and loaded again when another process wrote."""

from __future__ import annotations

from typing import Any

import pytest
from bson.errors import InvalidDocument
from pymongo.asynchronous.database import AsyncDatabase

from llmops_ingestion.dedup import MinHashConfig, MinHasher, content_fingerprint
from llmops_ingestion.document_registry import DocumentRegistry, DocumentVersion, StagedVersion

HASHER = MinHasher()
ARTICLE = (
    "To change the billing address on an invoice, open Billing, choose the invoice, "
    "select Edit address and save. Invoices already paid keep the address they were "
    "issued with; a corrected copy can be requested from support within 30 days. "
) * 3


def version_of(text: str, source: str) -> DocumentVersion:
    signature = HASHER.signature(text)
    return DocumentVersion(
        source=source,
        content_sha256=source,
        fingerprint=content_fingerprint(text),
        signature=signature,
        bands=HASHER.band_keys(signature),
        request_event_id=f"event-{source}",
        job_id="job",
    )


async def write_version(
    registry: DocumentRegistry, document_id: str, version: int, new: DocumentVersion
) -> None:
    """Make one version of a document in acme/kb live: a group of one."""
    index = await registry.collection("acme", "kb")
    await registry.write_staged(index, [registry.stage(index, document_id, version, new)])


async def test_a_registry_sees_what_another_process_wrote(mongo_db: AsyncDatabase[Any]) -> None:
    here, there = (
        DocumentRegistry(mongo_db, MinHashConfig()),
        DocumentRegistry(mongo_db, MinHashConfig()),
    )
    fingerprint = content_fingerprint(ARTICLE)
    assert (await here.collection("acme", "kb")).exact_duplicate(fingerprint, excluding="x") is None

    await write_version(there, "billing", 1, version_of(ARTICLE, "billing.md"))

    found = (await here.collection("acme", "kb")).exact_duplicate(fingerprint, excluding="x")
    assert found is not None
    assert (found.document_id, found.version, found.source) == ("billing", 1, "billing.md")
    edited = ARTICLE.replace("30 days", "60 days")
    signature = HASHER.signature(edited)
    near = (await here.collection("acme", "kb")).near_duplicate(
        signature, HASHER.band_keys(signature), excluding="copy", threshold=0.5
    )
    assert near is not None
    assert near[0].document_id == "billing"
    # other tenants and collections see none of it
    assert (await here.collection("acme", "other")).exact_duplicate(
        fingerprint, excluding="x"
    ) is None
    assert (await here.collection("globex", "kb")).exact_duplicate(
        fingerprint, excluding="x"
    ) is None


async def test_own_writes_and_deletions_keep_the_loaded_index_current(
    mongo_db: AsyncDatabase[Any],
) -> None:
    registry = DocumentRegistry(mongo_db, MinHashConfig())
    index = await registry.collection("acme", "kb")
    await write_version(registry, "billing", 1, version_of(ARTICLE, "billing.md"))
    assert await registry.collection("acme", "kb") is index  # nobody else wrote: no reload
    assert index.exact_duplicate(content_fingerprint(ARTICLE), excluding="x") is not None

    record = await registry.current("acme", "billing")
    assert record is not None
    await registry.write_deletion(record, 2)
    assert await registry.collection("acme", "kb") is index
    assert index.exact_duplicate(content_fingerprint(ARTICLE), excluding="x") is None
    reloaded = await DocumentRegistry(mongo_db, MinHashConfig()).collection("acme", "kb")
    assert len(reloaded) == 0
    current = await registry.current("acme", "billing")
    assert current is not None
    assert (current.version, current.deleted) == (2, True)


async def test_two_processes_writing_at_once_each_see_the_other(
    mongo_db: AsyncDatabase[Any],
) -> None:
    first, second = (
        DocumentRegistry(mongo_db, MinHashConfig()),
        DocumentRegistry(mongo_db, MinHashConfig()),
    )
    await first.collection("acme", "kb")
    await second.collection("acme", "kb")  # both loaded before either wrote
    one, two = ARTICLE, ARTICLE.replace("Billing", "Accounts") + " Refunds take 5 days."

    await write_version(first, "one", 1, version_of(one, "one.md"))
    await write_version(second, "two", 1, version_of(two, "two.md"))

    for registry in (first, second):
        index = await registry.collection("acme", "kb")
        assert len(index) == 2
        assert index.changes == 2
        assert index.exact_duplicate(content_fingerprint(one), excluding="x") is not None
        assert index.exact_duplicate(content_fingerprint(two), excluding="x") is not None


async def test_a_new_process_finds_the_last_change_number(mongo_db: AsyncDatabase[Any]) -> None:
    writer = DocumentRegistry(mongo_db, MinHashConfig())
    for n in range(37):
        text = f"{ARTICLE} Article {n}."
        await write_version(writer, f"doc-{n}", 1, version_of(text, f"{n}.md"))
    index = await DocumentRegistry(mongo_db, MinHashConfig()).collection("acme", "kb")
    assert index.changes == 37
    assert len(index) == 37


async def test_versions_staged_together_see_each_other_and_are_written_as_one_change(
    mongo_db: AsyncDatabase[Any],
) -> None:
    registry = DocumentRegistry(mongo_db, MinHashConfig())
    index = await registry.collection("acme", "kb")
    other = ARTICLE.replace("Billing", "Accounts") + " Refunds take 5 days."
    staged = [registry.stage(index, "billing", 1, version_of(ARTICLE, "billing.md"))]
    # the next document of the group is checked against the staged one
    copy = index.exact_duplicate(content_fingerprint(ARTICLE), excluding="copy")
    assert copy is not None
    assert copy.document_id == "billing"
    staged.append(registry.stage(index, "accounts", 1, version_of(other, "accounts.md")))

    await registry.write_staged(index, staged)

    assert await mongo_db["document_changes"].count_documents({}) == 1
    assert index.changes == 1
    reloaded = await DocumentRegistry(mongo_db, MinHashConfig()).collection("acme", "kb")
    assert (len(reloaded), reloaded.changes) == (2, 1)
    for text, document_id in ((ARTICLE, "billing"), (other, "accounts")):
        found = reloaded.exact_duplicate(content_fingerprint(text), excluding="x")
        assert found is not None
        assert found.document_id == document_id


async def test_a_group_that_failed_to_write_is_not_seen_by_the_next_check(
    mongo_db: AsyncDatabase[Any],
) -> None:
    registry = DocumentRegistry(mongo_db, MinHashConfig())
    index = await registry.collection("acme", "kb")
    staged = registry.stage(index, "billing", 1, version_of(ARTICLE, "billing.md"))
    broken = StagedVersion({**staged.fields, "updated_at": object()}, staged.signature, [])

    with pytest.raises(InvalidDocument):
        await registry.write_staged(index, [broken])

    again = await registry.collection("acme", "kb")
    assert again is not index  # loaded from the database again
    assert again.exact_duplicate(content_fingerprint(ARTICLE), excluding="x") is None
