"""Recording what was seen and settling items, on a real MongoDB-protocol server: the
indexer's latest versions written in groups, and an item chunked by an ingestion process
that has since restarted (nothing in memory) settled from the database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from test_ingest_job_store import submission

from llmops.blobs import BlobStore
from llmops.events.catalog import CONTRACTS, DocumentIndexed, IngestJobState, Topic
from llmops.events.envelope import new_event
from llmops.rag.jobs import ItemState
from llmops_indexer.chunk_indexer import ChunkIndexer
from llmops_ingestion.dedup import MinHashConfig
from llmops_ingestion.document_registry import DocumentRegistry
from llmops_ingestion.ingest_worker import IngestWorker
from llmops_ingestion.job_store import JobStore

pytestmark = pytest.mark.mongo


class RecordingBus:
    """Stands in for Kafka where only what is published matters."""

    def __init__(self) -> None:
        self.emitted: list[Any] = []

    async def emit(self, contract: Any, data: Any, **_: Any) -> None:
        self.emitted.append(data)


async def test_versions_seen_at_once_each_learn_the_newest_and_are_all_recorded(
    mongo_db: AsyncDatabase[Any],
) -> None:
    unused = cast(Any, None)  # recording versions touches only the database
    indexer = ChunkIndexer(
        store=unused, dense=unused, batcher=unused, sparse=unused, db=mongo_db, bus=unused
    )
    seen = [("acme/a", 1), ("acme/b", 2), ("acme/a", 3), ("acme/c", 1)]

    latest = await asyncio.gather(*(indexer._latest_version(key, v) for key, v in seen))

    assert latest == [1, 2, 3, 1]  # in the order they were seen: `a` at 1 was newest then
    assert await indexer._latest_version("acme/a", 2) == 3  # a stale batch learns it is
    stored = {
        found["_id"]: found["latest_version"]
        async for found in mongo_db.index_latest_versions.find()
    }
    assert stored == {"acme/a": 3, "acme/b": 2, "acme/c": 1}


async def test_an_item_chunked_before_a_restart_is_settled_from_the_database(
    mongo_db: AsyncDatabase[Any], tmp_path: Path
) -> None:
    jobs = JobStore(mongo_db)
    job, _ = await jobs.create("acme", submission(1))
    record = await jobs.item(job.job_id, "doc-0")
    assert record is not None
    chunked = record.item.model_copy(
        update={"state": ItemState.CHUNKED, "document_version": 1, "chunks": 3}
    )
    await jobs.update_item(record, chunked, chunk_tokens=[120, 120, 40])
    bus = RecordingBus()
    restarted = IngestWorker(  # a new process: it chunked nothing itself
        jobs=JobStore(mongo_db),
        documents=DocumentRegistry(mongo_db, MinHashConfig()),
        blobs=BlobStore(tmp_path),
        bus=cast(Any, bus),
        tools=cast(Any, None),
        chunks_per_batch=32,
    )
    indexed = DocumentIndexed(
        job_id=job.job_id,
        document_id="doc-0",
        document_version=1,
        collection="kb",
        vector_collection="kb__all-minilm-l6-v2",
        embedding_model="all-MiniLM-L6-v2",
        chunk_count=3,
        chunks_removed=0,
    )
    event = new_event(
        CONTRACTS[Topic.DOCS_INDEXED], indexed, source="indexer", tenant="acme", subject="doc-0"
    )

    await restarted.on_document_indexed(event)

    settled = await jobs.item(job.job_id, "doc-0")
    assert settled is not None
    assert (settled.item.state, settled.item.chunks, settled.chunk_tokens) == (
        ItemState.INDEXED,
        3,
        [120, 120, 40],
    )
    final = await jobs.job(job.job_id)
    assert final.state is IngestJobState.COMPLETED
    assert final.counts.documents_done == 1
    assert bus.emitted[-1].state is IngestJobState.COMPLETED


async def test_each_event_claims_what_this_process_stored_once_then_reads_the_database(
    mongo_db: AsyncDatabase[Any],
) -> None:
    jobs = JobStore(mongo_db)
    job, _ = await jobs.create("acme", submission(1))
    item_id = f"{job.job_id}/doc-0"
    await mongo_db["ingest_items"].update_one({"_id": item_id}, {"$set": {"source": "moved.md"}})

    queued = await jobs.claim_item(job.job_id, "doc-0")  # as created: no lookup
    again = await jobs.claim_item(job.job_id, "doc-0")  # claimed: the database

    assert queued is not None
    assert again is not None
    assert (queued.item.state, queued.item.source) == (ItemState.QUEUED, "doc-0.md")
    assert again.item.source == "moved.md"
    chunked = again.item.model_copy(update={"state": ItemState.CHUNKED, "document_version": 1})
    await jobs.update_item(again, chunked, chunk_tokens=[80])
    await mongo_db["ingest_items"].update_one({"_id": item_id}, {"$set": {"chunks": 9}})
    claimed = await jobs.claim_item(job.job_id, "doc-0")
    assert claimed is not None
    assert (claimed.item.state, claimed.item.chunks, claimed.chunk_tokens) == (
        ItemState.CHUNKED,
        0,
        [80],
    )
