"""Ingest jobs in MongoDB: one job document, one item per document, idempotent updates.

Every write is safe to repeat: a redelivered event sets the same fields again. Each item's
final outcome and chunk count are kept in an outcome record of its bucket (`BUCKET_SIZE`
consecutive items, `ingest_job_outcomes`), set with `$set`; the job document keeps each
bucket's tally, raised with `$max`. So counts are derived, never incremented, cannot drift
on redelivery, and no record grows with the size of the job (one job document holding
every outcome made settling quadratic: 1,000 settles took 9.7 s on FerretDB, the last
ones 14 ms each).

Events of one job are handled concurrently, and FerretDB applies an update as a read
then a write (ADR 0008), so this store settles a job's items one group at a time per
process (`GroupCommit`): the items settled while a group is written go together in the
next one, their final states in one bulk write, then their outcomes. (On MongoDB an
update of one document is atomic anyway; the group saves round trips there too.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from llmops.events.catalog import IngestJobState
from llmops.group_commit import GroupCommit
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
from llmops.storage import MongoDocument, bulk_update, upsert

FINAL_JOB_STATES = frozenset(
    {IngestJobState.COMPLETED, IngestJobState.COMPLETED_WITH_ERRORS, IngestJobState.FAILED}
)
BUCKET_SIZE = 256
"""Items per outcome record; a job document holds one tally per bucket."""
STORED_ITEMS_KEPT = 16_384
"""Items kept in memory as this process stored them, for their next event (`claim_item`)."""
_CHUNKS = "chunks"


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
class Settlement:
    """The job after an item's outcome was written, and whether this call wrote it.

    Outcomes settled at once are written in one group; the job then counts all of them,
    and only the call that wrote the group is `wrote`, so one of them finishes the job.
    """

    job: JobRecord
    wrote: bool


@dataclass(frozen=True)
class _Outcome:
    """An item's final state, to be written with the others settled at once."""

    ordinal: int
    item: JobItem
    store_item: bool
    """Whether the item record is written too (False when its event was redelivered)."""


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
        self._outcomes = db["ingest_job_outcomes"]
        self._job_writes = KeyedLocks()
        self._steps: GroupCommit[UpdateOne, None] = GroupCommit(self._write_steps)
        self._stored: dict[str, ItemRecord] = {}  # see claim_item
        self._settling: GroupCommit[_Outcome, JobRecord] = GroupCommit(self._settle_group)

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
        refused = dict.fromkeys(range(offset, len(items)), (ItemState.FAILED.value, 0))
        buckets = {
            str(bucket): _bucket_document(job_id, bucket, outcomes)
            for bucket, outcomes in _by_bucket(refused).items()
        }
        await self._jobs.insert_one(
            {
                "_id": job_id,
                "tenant": tenant,
                "collection": submission.collection,
                "state": IngestJobState.QUEUED.value,
                "options": options.model_dump(),
                "documents_total": len(items),
                "tallies": {bucket: _tally(document) for bucket, document in buckets.items()},
                "created_at": now,
                "updated_at": now,
            }
        )
        if buckets:
            await self._outcomes.insert_many(list(buckets.values()))
        await self._items.insert_many(items)
        for stored in items[:offset]:
            self._remember(_item_record(stored))
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

    async def claim_item(self, job_id: str, document_id: str) -> ItemRecord | None:
        """The item as this process last stored it, when it stored it and no event claimed
        it since; else as the database holds it.

        Each event for an item claims it, so the usual path (this process queued the item,
        then chunked it) reads nothing: the item's request finds it as created, its
        `docs.indexed` as chunked. What another process could have written to it in
        between sets the same fields or settles it the same way, as a redelivery would.
        A redelivered event finds the item claimed and reads the database.
        """
        stored = self._stored.pop(f"{job_id}/{document_id}", None)
        return stored if stored is not None else await self.item(job_id, document_id)

    def _remember(self, record: ItemRecord) -> None:
        """Keep what was stored for the item's next event, forgetting the oldest first."""
        key = f"{record.job_id}/{record.item.document_id}"
        if key not in self._stored and len(self._stored) >= STORED_ITEMS_KEPT:
            del self._stored[next(iter(self._stored))]
        self._stored[key] = record

    async def items(self, job_id: str) -> list[ItemRecord]:
        cursor = self._items.find({"job_id": job_id}).sort("ordinal", ASCENDING)
        return [_item_record(found) async for found in cursor]

    async def update_item(
        self, record: ItemRecord, item: JobItem, *, chunk_tokens: list[int] | None = None
    ) -> None:
        """Store a step of the item that is not its final state (the job is untouched);
        with the steps of the job's other items stored at once, in one bulk write."""
        if item.state.final:
            raise ValueError(f"{item.state.value} is final: settle_item stores it")
        fields = _fields(item)
        if chunk_tokens is not None:
            fields["chunk_tokens"] = chunk_tokens
        step = UpdateOne({"_id": f"{record.job_id}/{item.document_id}"}, {"$set": fields})
        await self._steps.submit(record.job_id, step)
        tokens = record.chunk_tokens if chunk_tokens is None else chunk_tokens
        self._remember(replace(record, item=item, chunk_tokens=tokens))

    async def settle_item(self, record: ItemRecord, item: JobItem) -> Settlement:
        """Store the item's final state, then its outcome in the job.

        The item goes first: whoever finishes the job reads every item of it, and a crash
        between the two writes is repaired by `resettle` when the event comes again.
        """
        if not item.state.final:
            raise ValueError(f"{item.state.value} is not final: update_item stores it")
        return await self._settle(record.job_id, _Outcome(record.ordinal, item, store_item=True))

    async def resettle(self, record: ItemRecord) -> Settlement:
        """Write a settled item's outcome again (its event was redelivered): idempotent."""
        if not record.item.state.final:
            raise ValueError(f"{record.item.state.value} is not final: nothing to resettle")
        outcome = _Outcome(record.ordinal, record.item, store_item=False)
        return await self._settle(record.job_id, outcome)

    async def _settle(self, job_id: str, outcome: _Outcome) -> Settlement:
        committed = await self._settling.submit(job_id, outcome)
        return Settlement(committed.value, wrote=committed.wrote)

    async def _settle_group(self, job_id: str, outcomes: list[_Outcome]) -> Sequence[JobRecord]:
        """The items' final states in one bulk write, then one write per bucket touched,
        then one raising those buckets' tallies in the job."""
        stored = [
            UpdateOne(
                {"_id": f"{job_id}/{outcome.item.document_id}"}, {"$set": _fields(outcome.item)}
            )
            for outcome in outcomes
            if outcome.store_item
        ]
        await bulk_update(self._items, stored)
        entries = {
            outcome.ordinal: (outcome.item.state.value, outcome.item.chunks) for outcome in outcomes
        }
        async with self._job_writes.hold(job_id):
            job = await self._write_outcomes(job_id, entries)
        return [job] * len(outcomes)

    async def _write_outcomes(self, job_id: str, outcomes: dict[int, tuple[str, int]]) -> JobRecord:
        raised: MongoDocument = {}
        for bucket, entries in _by_bucket(outcomes).items():
            tally = await self._write_bucket(job_id, bucket, entries)
            raised |= {f"tallies.{bucket}.{key}": value for key, value in tally.items()}
        updated = await self._jobs.find_one_and_update(
            {"_id": job_id},
            {"$max": raised, "$set": {"updated_at": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:
            raise JobNotFoundError(f"no ingest job {job_id}")
        return _job_record(updated)

    async def _write_bucket(
        self, job_id: str, bucket: int, outcomes: dict[int, tuple[str, int]]
    ) -> dict[str, int]:
        fields: MongoDocument = {"job_id": job_id}
        for ordinal, (state, chunks) in outcomes.items():
            fields[f"outcomes.{ordinal}"] = state
            fields[f"{_CHUNKS}.{ordinal}"] = chunks
        written = await upsert(
            lambda: self._outcomes.find_one_and_update(
                {"_id": f"{job_id}/{bucket}"},
                {"$set": fields},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        )
        assert written is not None  # an upsert returning the record after
        return _tally(written)

    async def _write_steps(self, job_id: str, steps: list[UpdateOne]) -> Sequence[None]:
        await bulk_update(self._items, steps)
        return [None] * len(steps)


def _fields(item: JobItem) -> MongoDocument:
    fields: MongoDocument = item.model_dump(mode="json")
    return fields


def _by_bucket(outcomes: dict[int, tuple[str, int]]) -> dict[int, dict[int, tuple[str, int]]]:
    buckets: dict[int, dict[int, tuple[str, int]]] = {}
    for ordinal, outcome in outcomes.items():
        buckets.setdefault(ordinal // BUCKET_SIZE, {})[ordinal] = outcome
    return buckets


def _bucket_document(
    job_id: str, bucket: int, outcomes: dict[int, tuple[str, int]]
) -> MongoDocument:
    return {
        "_id": f"{job_id}/{bucket}",
        "job_id": job_id,
        "outcomes": {str(ordinal): state for ordinal, (state, _) in outcomes.items()},
        _CHUNKS: {str(ordinal): chunks for ordinal, (_, chunks) in outcomes.items()},
    }


def _tally(bucket: MongoDocument) -> dict[str, int]:
    """Items per final state and chunks of one outcome record; each only grows, since an
    item's outcome, once final, is only ever written again with the same value."""
    states = Counter(bucket.get("outcomes", {}).values())
    tally = {state.value: states[state.value] for state in ItemState if state.final}
    return tally | {_CHUNKS: sum(bucket.get(_CHUNKS, {}).values())}


def _job_record(found: MongoDocument) -> JobRecord:
    totals: Counter[str] = Counter()
    for tally in found.get("tallies", {}).values():
        totals.update(tally)
    totals.update(_tally(found))  # jobs stored before tallies kept the maps in the job
    counts = JobCounts(
        documents_total=found["documents_total"],
        documents_done=totals[ItemState.INDEXED.value],
        documents_failed=totals[ItemState.FAILED.value],
        documents_skipped=totals[ItemState.SKIPPED.value],
        chunks=totals[_CHUNKS],
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
