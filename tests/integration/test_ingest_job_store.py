"""Ingest job records on a real MongoDB-protocol server: outcomes settled at once are
written together, counted once, kept in bounded records, and written again safely."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from llmops.events.catalog import IngestJobState
from llmops.rag.jobs import DocumentSubmission, ItemState, JobSubmission, RejectedDocument
from llmops_ingestion.job_store import BUCKET_SIZE, ItemRecord, JobStore

pytestmark = pytest.mark.mongo


def submission(documents: int, rejected: int = 0) -> JobSubmission:
    return JobSubmission(
        collection="kb",
        documents=[
            DocumentSubmission(
                document_id=f"doc-{n}",
                source=f"doc-{n}.md",
                content_uri=f"file:///tmp/doc-{n}.md",
                content_type="text/markdown",
                size_bytes=10,
                content_sha256=hashlib.sha256(str(n).encode()).hexdigest(),
            )
            for n in range(documents)
        ],
        rejected=[
            RejectedDocument(
                document_id=f"big-{n}", source=f"big-{n}.pdf", reason="too_large", detail="2 GB"
            )
            for n in range(rejected)
        ],
    )


def outcome(n: int) -> ItemState:
    return (
        ItemState.SKIPPED if n % 10 == 3 else ItemState.FAILED if n % 10 == 7 else ItemState.INDEXED
    )


async def settle(store: JobStore, job_id: str, n: int) -> Any:
    record = await store.item(job_id, f"doc-{n}")
    assert record is not None
    state = outcome(n)
    chunks = n % 5 + 1 if state is ItemState.INDEXED else 0
    return await store.settle_item(
        record, record.item.model_copy(update={"state": state, "chunks": chunks})
    )


async def test_items_settled_at_once_are_counted_once_and_one_settlement_finishes_the_job(
    mongo_db: AsyncDatabase[Any],
) -> None:
    store = JobStore(mongo_db)
    documents, rejected = 2 * BUCKET_SIZE + 100, 12
    job, _ = await store.create("acme", submission(documents, rejected))

    settlements = await asyncio.gather(*(settle(store, job.job_id, n) for n in range(documents)))

    final = await store.job(job.job_id)
    states = [outcome(n) for n in range(documents)]
    assert final.finished
    assert final.counts.model_dump() == {
        "documents_total": documents + rejected,
        "documents_done": states.count(ItemState.INDEXED),
        "documents_failed": states.count(ItemState.FAILED) + rejected,
        "documents_skipped": states.count(ItemState.SKIPPED),
        "chunks": sum(n % 5 + 1 for n in range(documents) if outcome(n) is ItemState.INDEXED),
    }
    assert sum(1 for s in settlements if s.wrote and s.job.finished) == 1
    assert sum(1 for s in settlements if s.wrote) < documents  # written in groups
    # no record grows with the job: a tally per bucket, an outcome record per bucket
    stored = await mongo_db["ingest_jobs"].find_one({"_id": job.job_id})
    assert stored is not None
    assert "outcomes" not in stored
    assert sorted(stored["tallies"]) == ["0", "1", "2"]
    buckets = await mongo_db["ingest_job_outcomes"].find({"job_id": job.job_id}).to_list()
    assert sorted(len(b["outcomes"]) for b in buckets) == [
        (documents + rejected) - 2 * BUCKET_SIZE,
        BUCKET_SIZE,
        BUCKET_SIZE,
    ]


async def test_an_outcome_lost_to_a_crash_is_written_again_and_rewriting_changes_nothing(
    mongo_db: AsyncDatabase[Any],
) -> None:
    store = JobStore(mongo_db)
    job, _ = await store.create("acme", submission(3))
    for n in (0, 1):
        await settle(store, job.job_id, n)
    # a crash after the item's final state was stored, before its outcome reached the job
    await mongo_db["ingest_items"].update_one(
        {"_id": f"{job.job_id}/doc-2"}, {"$set": {"state": "indexed", "chunks": 4}}
    )
    assert not (await store.job(job.job_id)).finished

    record = await store.item(job.job_id, "doc-2")
    assert isinstance(record, ItemRecord)
    repaired = await store.resettle(record)
    again = [await store.resettle(r) for r in await store.items(job.job_id)]

    assert repaired.wrote
    assert repaired.job.finished
    assert repaired.job.counts.chunks == 1 + 2 + 4
    assert [s.job.counts for s in again] == [repaired.job.counts] * 3
    queued = await store.create("acme", submission(1))
    unsettled = await store.item(queued[0].job_id, "doc-0")
    assert unsettled is not None
    with pytest.raises(ValueError, match="queued is not final"):
        await store.resettle(unsettled)


async def test_jobs_stored_with_outcome_maps_in_the_job_are_still_counted(
    mongo_db: AsyncDatabase[Any],
) -> None:
    store = JobStore(mongo_db)
    job, _ = await store.create("acme", submission(3))
    # the earlier layout: every outcome in maps of the job document
    await mongo_db["ingest_jobs"].update_one(
        {"_id": job.job_id},
        {"$set": {"outcomes": {"0": "indexed", "1": "skipped"}, "chunks": {"0": 5, "1": 0}}},
    )
    assert (await store.job(job.job_id)).counts.model_dump() == {
        "documents_total": 3,
        "documents_done": 1,
        "documents_failed": 0,
        "documents_skipped": 1,
        "chunks": 5,
    }

    last = await settle(store, job.job_id, 2)

    assert last.job.finished
    assert last.job.counts.chunks == 5 + 3
    assert last.job.state is IngestJobState.QUEUED  # finishing it is the worker's step
