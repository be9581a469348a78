"""Ingest jobs in MongoDB: one job document, one item per document, idempotent updates.

Every write is safe to repeat: a redelivered event sets the same fields again. The job
document keeps each item's final outcome and chunk count in maps keyed by the item's
position, so counts are derived, never incremented, and cannot drift on redelivery.

Events of one job are handled concurrently, and FerretDB applies an update as a read
then a write (ADR 0008), so this store writes each job document one update at a time
per process. (On MongoDB an update of one document is atomic anyway.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from llmops.events.catalog import IngestJobState
from llmops.keyed_locks import KeyedLocks
from llmops.rag.jobs import (
    CollectionOptions,
    DataReport,
    ItemState,
    JobCounts,
    JobItem,
    JobSubmission,
    JobView,
)
from llmops.storage import MongoDocument, upsert

FINAL_JOB_STATES = frozenset(
    {IngestJobState.COMPLETED, IngestJobState.COMPLETED_WITH_ERRORS, IngestJobState.FAILED}
)


class JobNotFoundError(LookupError):
    """No job with this id for this tenant."""


@dataclass(frozen=True)
class JobRecord:
    """What a handler needs to know about the job an event belongs to."""

    job_id: str
    tenant: str
    collection: str
    state: IngestJobState
    options: CollectionOptions
    counts: JobCounts

    @property
    def finished(self) -> bool:
        return self.counts.documents_total == (
            self.counts.documents_done
            + self.counts.documents_failed
            + self.counts.documents_skipped
        )


@dataclass(frozen=True)
class ItemRecord:
    """One document of a job, as stored."""

    job_id: str
    ordinal: int
    item: JobItem
    chunk_tokens: list[int]


class JobStore:
    """Jobs (`ingest_jobs`), their items (`ingest_items`) and collection options."""

    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._jobs = db["ingest_jobs"]
        self._items = db["ingest_items"]
        self._collections = db["ingest_collections"]
        self._job_writes = KeyedLocks()

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db["ingest_items"].create_index([("job_id", ASCENDING), ("ordinal", ASCENDING)])
        await db["ingest_jobs"].create_index([("tenant", ASCENDING), ("created_at", ASCENDING)])

    # -- collections ----------------------------------------------------------------------

    async def collection_options(
        self, tenant: str, collection: str, given: CollectionOptions | None
    ) -> CollectionOptions:
        """The options a job runs with: the ones given (then saved), else the saved ones."""
        key = f"{tenant}/{collection}"
        if given is not None:
            await upsert(
                lambda: self._collections.update_one(
                    {"_id": key},
                    {"$set": {"tenant": tenant, "collection": collection, **given.model_dump()}},
                    upsert=True,
                )
            )
            return given
        saved = await self._collections.find_one({"_id": key})
        if saved is None:
            return CollectionOptions()
        return CollectionOptions.model_validate(saved)

    # -- jobs -----------------------------------------------------------------------------

    async def create(self, tenant: str, submission: JobSubmission) -> tuple[JobRecord, list[str]]:
        """Store a new job and its items; returns it and the item ids of rejected documents."""
        options = await self.collection_options(tenant, submission.collection, submission.options)
        job_id = str(uuid4())
        now = datetime.now(UTC)
        items: list[MongoDocument] = []
        for ordinal, document in enumerate(submission.documents):
            item = JobItem(
                document_id=document.document_id, source=document.source, state=ItemState.QUEUED
            )
            items.append(self._item_document(job_id, ordinal, item))
        offset = len(submission.documents)
        for ordinal, rejected in enumerate(submission.rejected, start=offset):
            item = JobItem(
                document_id=rejected.document_id,
                source=rejected.source,
                state=ItemState.FAILED,
                reason=rejected.reason,
                detail=rejected.detail,
            )
            items.append(self._item_document(job_id, ordinal, item))
        outcomes = {str(ordinal): ItemState.FAILED.value for ordinal in range(offset, len(items))}
        await self._jobs.insert_one(
            {
                "_id": job_id,
                "tenant": tenant,
                "collection": submission.collection,
                "state": IngestJobState.QUEUED.value,
                "options": options.model_dump(),
                "documents_total": len(items),
                "outcomes": outcomes,
                "chunks": {},
                "created_at": now,
                "updated_at": now,
            }
        )
        await self._items.insert_many(items)
        record = await self.job(job_id)
        return record, [item["_id"] for item in items[offset:]]

    @staticmethod
    def _item_document(job_id: str, ordinal: int, item: JobItem) -> MongoDocument:
        return {
            "_id": f"{job_id}/{item.document_id}",
            "job_id": job_id,
            "ordinal": ordinal,
            "chunk_tokens": [],
            **item.model_dump(mode="json"),
        }

    async def job(self, job_id: str, *, tenant: str | None = None) -> JobRecord:
        found = await self._jobs.find_one({"_id": job_id})
        if found is None or (tenant is not None and found["tenant"] != tenant):
            raise JobNotFoundError(f"no ingest job {job_id}")
        return _job_record(found)

    async def start(self, job_id: str) -> bool:
        """Mark a queued job running; True only for the call that did it."""
        async with self._job_writes.hold(job_id):
            result = await self._jobs.update_one(
                {"_id": job_id, "state": IngestJobState.QUEUED.value},
                {"$set": {"state": IngestJobState.RUNNING.value, "updated_at": datetime.now(UTC)}},
            )
        return result.modified_count == 1

    async def set_state(
        self, job_id: str, state: IngestJobState, *, report: DataReport | None = None
    ) -> None:
        """Move the job to `state`; a final state is never left again."""
        update: MongoDocument = {"state": state.value, "updated_at": datetime.now(UTC)}
        if report is not None:
            update["report"] = report.model_dump(mode="json")
        async with self._job_writes.hold(job_id):
            await self._jobs.update_one(
                {"_id": job_id, "state": {"$nin": [s.value for s in FINAL_JOB_STATES]}},
                {"$set": update},
            )

    async def view(self, job_id: str, tenant: str, *, with_items: bool = True) -> JobView:
        """The job for its tenant; `with_items=False` skips the per-document list (polling)."""
        found = await self._jobs.find_one({"_id": job_id})
        if found is None or found["tenant"] != tenant:
            raise JobNotFoundError(f"no ingest job {job_id}")
        items = [record.item for record in await self.items(job_id)] if with_items else []
        record = _job_record(found)
        report = found.get("report")
        return JobView(
            job_id=job_id,
            tenant=record.tenant,
            collection=record.collection,
            state=record.state,
            counts=record.counts,
            created_at=found["created_at"],
            updated_at=found["updated_at"],
            items=items,
            report=DataReport.model_validate(report) if report else None,
        )

    async def recent(self, tenant: str, *, limit: int) -> list[JobRecord]:
        cursor = self._jobs.find({"tenant": tenant}).sort("created_at", -1).limit(limit)
        return [_job_record(found) async for found in cursor]

    # -- items ----------------------------------------------------------------------------

    async def item(self, job_id: str, document_id: str) -> ItemRecord | None:
        found = await self._items.find_one({"_id": f"{job_id}/{document_id}"})
        return None if found is None else _item_record(found)

    async def items(self, job_id: str) -> list[ItemRecord]:
        cursor = self._items.find({"job_id": job_id}).sort("ordinal", ASCENDING)
        return [_item_record(found) async for found in cursor]

    async def update_item(
        self, record: ItemRecord, item: JobItem, *, chunk_tokens: list[int] | None = None
    ) -> None:
        """Store a step of the item that is not its final state (the job is untouched)."""
        if item.state.final:
            raise ValueError(f"{item.state.value} is final: settle_item stores it")
        await self._write_item(record, item, chunk_tokens)

    async def settle_item(self, record: ItemRecord, item: JobItem) -> JobRecord:
        """Store the item's final state, then its outcome in the job; returns the job."""
        if not item.state.final:
            raise ValueError(f"{item.state.value} is not final: update_item stores it")
        await self._write_item(record, item, None)
        update: MongoDocument = {
            "updated_at": datetime.now(UTC),
            f"outcomes.{record.ordinal}": item.state.value,
            f"chunks.{record.ordinal}": item.chunks,
        }
        async with self._job_writes.hold(record.job_id):
            updated = await self._jobs.find_one_and_update(
                {"_id": record.job_id},
                {"$set": update},
                return_document=ReturnDocument.AFTER,
            )
        if updated is None:
            raise JobNotFoundError(f"no ingest job {record.job_id}")
        return _job_record(updated)

    async def _write_item(
        self, record: ItemRecord, item: JobItem, chunk_tokens: list[int] | None
    ) -> None:
        fields: MongoDocument = item.model_dump(mode="json")
        if chunk_tokens is not None:
            fields["chunk_tokens"] = chunk_tokens
        await self._items.update_one(
            {"_id": f"{record.job_id}/{item.document_id}"}, {"$set": fields}
        )


def _job_record(found: MongoDocument) -> JobRecord:
    outcomes: dict[str, str] = found.get("outcomes", {})
    chunks: dict[str, int] = found.get("chunks", {})
    states = list(outcomes.values())
    counts = JobCounts(
        documents_total=found["documents_total"],
        documents_done=states.count(ItemState.INDEXED.value),
        documents_failed=states.count(ItemState.FAILED.value),
        documents_skipped=states.count(ItemState.SKIPPED.value),
        chunks=sum(chunks.values()),
    )
    return JobRecord(
        job_id=found["_id"],
        tenant=found["tenant"],
        collection=found["collection"],
        state=IngestJobState(found["state"]),
        options=CollectionOptions.model_validate(found["options"]),
        counts=counts,
    )


def _item_record(found: dict[str, Any]) -> ItemRecord:
    return ItemRecord(
        job_id=found["job_id"],
        ordinal=found["ordinal"],
        item=JobItem.model_validate(found),
        chunk_tokens=list(found.get("chunk_tokens", [])),
    )
