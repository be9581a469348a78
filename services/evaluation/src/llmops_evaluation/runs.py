"""Evaluation runs in MongoDB: the run, one result per item, and what was dispatched.

A run's counts are derived from its stored item results (one per item, inserted once
under `<run>/<item>`), so a redelivered result can neither double count nor lose an
item; the aggregate is computed from the same records when the last one arrives.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.events.catalog import EvaluationCandidate
from llmops.storage import MongoDocument, insert_new, insert_once


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


FINAL_RUN_STATES = frozenset({RunState.COMPLETED, RunState.FAILED})


class RunNotFoundError(LookupError):
    """No run with this id for this tenant."""


class AggregateScore(BaseModel):
    """A metric over the run's scored items: mean with its 95% bootstrap interval."""

    metric: str
    mean: float
    ci_low: float
    ci_high: float
    items: int = Field(description="Items the metric has a value for.")


class ItemResult(BaseModel):
    """One item's answer and scores (or why it has none)."""

    run_id: str
    item_id: str
    ordinal: int
    status: str = Field(description="`ok`, or `error` when the candidate call failed.")
    question: str = ""
    output: str | None = None
    error: str | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    notes: dict[str, str] = Field(
        default_factory=dict, description="Per metric: judge reasons, or why it has no value."
    )
    contexts: list[str] = Field(default_factory=list, description="Passages retrieved.")
    latency_ms: float = 0.0
    total_tokens: int = 0


class RunCounts(BaseModel):
    items: int
    scored: int
    failed: int

    @property
    def done(self) -> int:
        return self.scored + self.failed


class RunView(BaseModel):
    """A run as the API shows it."""

    run_id: str
    dataset: str
    dataset_version: int
    candidate: EvaluationCandidate
    prompt_version: int | None = Field(
        None, description="The prompt version the label resolved to."
    )
    metrics: list[str]
    state: RunState
    counts: RunCounts
    aggregate: list[AggregateScore] = Field(default_factory=list)
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class RunStore:
    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._runs = db["eval_runs"]
        self._results = db["eval_item_results"]
        self._dispatches = db["eval_dispatches"]

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db["eval_runs"].create_index([("tenant", ASCENDING), ("created_at", ASCENDING)])
        await db["eval_item_results"].create_index([("run_id", ASCENDING), ("ordinal", ASCENDING)])
        await db["eval_dispatches"].create_index([("run_id", ASCENDING)])

    async def create(
        self,
        run_id: str,
        tenant: str,
        *,
        dataset: str,
        dataset_version: int,
        items: int,
        candidate: EvaluationCandidate,
        metrics: list[str],
    ) -> None:
        await insert_once(
            self._runs,
            run_id,
            {
                "tenant": tenant,
                "dataset": dataset,
                "dataset_version": dataset_version,
                "candidate": candidate.model_dump(mode="json"),
                "metrics": metrics,
                "state": RunState.QUEUED.value,
                "items": items,
                "created_at": datetime.now(UTC),
            },
        )

    async def raw(self, run_id: str) -> MongoDocument:
        found = await self._runs.find_one({"_id": run_id})
        if found is None:
            raise RunNotFoundError(f"run {run_id!r} not found")
        return found

    async def view(self, run_id: str, tenant: str) -> RunView:
        document = await self.raw(run_id)
        if document["tenant"] != tenant:
            raise RunNotFoundError(f"run {run_id!r} not found")
        return self._view(document, await self.counts(run_id, int(document["items"])))

    async def recent(self, tenant: str, *, limit: int) -> list[RunView]:
        cursor = self._runs.find({"tenant": tenant}).sort("created_at", DESCENDING).limit(limit)
        return [
            self._view(doc, await self.counts(doc["_id"], int(doc["items"])))
            async for doc in cursor
        ]

    async def start(self, run_id: str, *, prompt_version: int) -> None:
        await self._runs.update_one(
            {"_id": run_id, "state": RunState.QUEUED.value},
            {"$set": {"state": RunState.RUNNING.value, "prompt_version": prompt_version}},
        )

    async def fail(self, run_id: str, error: str) -> None:
        await self._runs.update_one(
            {"_id": run_id},
            {
                "$set": {
                    "state": RunState.FAILED.value,
                    "error": error[:2000],
                    "finished_at": datetime.now(UTC),
                }
            },
        )

    async def complete(self, run_id: str, aggregate: list[AggregateScore]) -> None:
        await self._runs.update_one(
            {"_id": run_id},
            {
                "$set": {
                    "state": RunState.COMPLETED.value,
                    "aggregate": [score.model_dump() for score in aggregate],
                    "finished_at": datetime.now(UTC),
                }
            },
        )

    # -- items ----------------------------------------------------------------------------

    async def settled_items(self, run_id: str) -> set[str]:
        cursor = self._results.find({"run_id": run_id}, projection={"item_id": True})
        return {doc["item_id"] async for doc in cursor}

    async def record_dispatches(self, run_id: str, dispatches: list[MongoDocument]) -> None:
        """What each item's request was built from (retrieved passages); kept once."""
        await insert_new(
            self._dispatches,
            [{"_id": f"{run_id}/{d['item_id']}", "run_id": run_id, **d} for d in dispatches],
        )

    async def dispatch(self, run_id: str, item_id: str) -> MongoDocument | None:
        return await self._dispatches.find_one({"_id": f"{run_id}/{item_id}"})

    async def record_result(self, result: ItemResult) -> bool:
        """Store an item's result once; False when it was already there (a redelivery)."""
        return await insert_once(
            self._results, f"{result.run_id}/{result.item_id}", result.model_dump()
        )

    async def result(self, run_id: str, item_id: str) -> ItemResult | None:
        found = await self._results.find_one({"_id": f"{run_id}/{item_id}"})
        return ItemResult.model_validate(found) if found else None

    async def results(self, run_id: str) -> list[ItemResult]:
        cursor = self._results.find({"run_id": run_id}).sort("ordinal", ASCENDING)
        return [ItemResult.model_validate(doc) async for doc in cursor]

    async def counts(self, run_id: str, items: int) -> RunCounts:
        failed = await self._results.count_documents({"run_id": run_id, "status": "error"})
        settled = await self._results.count_documents({"run_id": run_id})
        return RunCounts(items=items, scored=settled - failed, failed=failed)

    @staticmethod
    def _view(document: MongoDocument, counts: RunCounts) -> RunView:
        fields: dict[str, Any] = {k: v for k, v in document.items() if k not in {"_id", "items"}}
        return RunView.model_validate({**fields, "run_id": document["_id"], "counts": counts})
