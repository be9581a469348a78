"""Rollups in MongoDB, written so that a crash neither loses nor double counts an event.

Each consumed partition is flushed on its own: a `Flush` is the cell deltas folded from
a range of its offsets. Its cells are inserted into `monitoring_cells` under ids derived
from the flush (`<topic>|<partition>|<first offset>|<cell id>`), then one small marker
`{start, end}` goes into `monitoring_flushes`: the marker is the commit point, and the
partition's offset store. When a partition is assigned, or after a failed write,
`recover` deletes the cells of flushes that have no marker (a crash between the two
writes) and answers the offset after the last committed flush, where the consumer
resumes, whatever Kafka's committed offset says.

Nothing is updated in place: FerretDB's SQLite backend (local runs, tests) scans a
collection for every update but inserts at a constant cost, and deltas need no
read-modify-write. A query merges the deltas of each cell (totals add, sketches merge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.storage import MongoDocument
from llmops_monitoring.rollups import (
    DIMENSION_NAMES,
    CellKey,
    RollupCell,
    Window,
    group_cells,
)

FLUSHES = "monitoring_flushes"
CELLS = "monitoring_cells"


@dataclass(frozen=True, slots=True)
class SourcePartition:
    """A consumed Kafka partition, by the catalog topic's name (without deployment prefix)."""

    topic: str
    partition: int

    def key(self) -> str:
        return f"{self.topic}|{self.partition}"


@dataclass(frozen=True, slots=True)
class Flush:
    """Cell deltas folded from offsets [start, end) of one partition."""

    source: SourcePartition
    start: int
    end: int
    cells: Sequence[RollupCell]

    @property
    def flush_id(self) -> str:
        return f"{self.source.key()}|{self.start}"


@dataclass(frozen=True, slots=True)
class CellQuery:
    """Which stored cells to read: one window, window starts in [since, until), and
    dimensions equal to the given values."""

    window: Window
    since: datetime
    until: datetime
    equals: tuple[tuple[str, str], ...] = ()


class RollupStore:
    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._flushes = db[FLUSHES]
        self._cells = db[CELLS]

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db[FLUSHES].create_index([("source", ASCENDING), ("end", DESCENDING)])
        await db[CELLS].create_index([("window", ASCENDING), ("window_start", ASCENDING)])
        await db[CELLS].create_index([("source", ASCENDING), ("flush_start", ASCENDING)])

    async def write(self, flush: Flush) -> None:
        """Store a flush's cells, then commit it. After a failure, `recover` before the next."""
        source = flush.source.key()
        documents = [
            {
                "_id": f"{flush.flush_id}|{cell.key.cell_id()}",
                "source": source,
                "flush_start": flush.start,
                "window_start": cell.key.start,
                **{k: v for k, v in cell.to_dict().items() if k != "window_start"},
            }
            for cell in flush.cells
        ]
        if documents:
            await self._cells.insert_many(documents, ordered=False)
        marker = {"source": source, "start": flush.start, "end": flush.end}
        await self._flushes.insert_one({"_id": flush.flush_id, **marker})

    async def recover(self, source: SourcePartition) -> int | None:
        """Delete what uncommitted flushes of the partition wrote; return the offset after
        its last committed flush (None: never flushed, Kafka's committed offset applies)."""
        last = await self._flushes.find_one({"source": source.key()}, sort=[("end", DESCENDING)])
        end = None if last is None else int(last["end"])
        await self._cells.delete_many({"source": source.key(), "flush_start": {"$gte": end or 0}})
        return end

    async def read(self, query: CellQuery) -> list[RollupCell]:
        """Cells of the query, each merged over its deltas, in time order."""
        selector: MongoDocument = {
            "window": query.window.value,
            "window_start": {"$gte": query.since, "$lt": query.until},
        }
        for name, value in query.equals:
            if name not in DIMENSION_NAMES:
                raise ValueError(f"unknown dimension {name!r}; known: {DIMENSION_NAMES}")
            selector[name] = value
        merged: dict[CellKey, RollupCell] = {}
        hidden = {"_id": False, "source": False, "flush_start": False}
        async for document in self._cells.find(selector, projection=hidden):
            document["window_start"] = document["window_start"].strftime("%Y-%m-%dT%H:%M:%SZ")
            cell = RollupCell.from_dict(document)
            existing = merged.get(cell.key)
            if existing is None:
                merged[cell.key] = cell
            else:
                existing.merge(cell)
        return sorted(merged.values(), key=lambda cell: (cell.key.start, cell.key.cell_id()))

    async def grouped(self, query: CellQuery, keep: Sequence[str]) -> list[RollupCell]:
        """`read`, then merged over every dimension not in `keep`."""
        return group_cells(await self.read(query), keep)


__all__ = ["CELLS", "FLUSHES", "CellQuery", "Flush", "RollupStore", "SourcePartition"]
