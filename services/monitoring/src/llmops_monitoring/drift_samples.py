"""Drift samples: a hash-sampled share of completions, kept with what drift checks compare.

Stored once per completion id, so a replayed partition writes nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.storage import MongoDocument, insert_new
from llmops_monitoring.stream_facts import DriftSample

SAMPLES = "monitoring_drift_samples"


@dataclass(frozen=True, slots=True)
class SampleWindow:
    """Samples of one tenant between two times, optionally of one prompt and collection."""

    tenant: str
    since: datetime
    until: datetime
    prompt: str | None = None
    collection: str | None = None
    limit: int = 2_000


class DriftSampleStore:
    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._samples = db[SAMPLES]

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db[SAMPLES].create_index([("tenant", ASCENDING), ("time", ASCENDING)])

    async def keep(self, samples: Sequence[DriftSample]) -> None:
        await insert_new(self._samples, [sample.to_document() for sample in samples])

    async def read(self, window: SampleWindow) -> list[dict[str, Any]]:
        """The window's samples, oldest first, at most `limit`."""
        query: MongoDocument = {
            "tenant": window.tenant,
            "time": {"$gte": window.since, "$lt": window.until},
        }
        if window.prompt is not None:
            query["prompt"] = window.prompt
        if window.collection is not None:
            query["collection"] = window.collection
        cursor = self._samples.find(query).sort("time", ASCENDING).limit(window.limit)
        return [document async for document in cursor]
