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
collection for every update whose filter is not a lone `_id` but inserts at a constant
cost, and deltas need no read-modify-write. A query merges the deltas of each cell
(totals add, sketches merge).

`compact` keeps that number small: per partition and cell, it inserts one document that
merges what is visible and is marked with the last flush it covers, then deletes what it
replaced. What a reader sees of a (partition, cell) is always the newest compacted
document plus the deltas of later flushes, so a crash between the insert and the
deletes changes nothing a query answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.storage import MongoDocument, insert_new
from llmops_monitoring.rollups import (
    DIMENSION_NAMES,
    CellKey,
    RollupCell,
    Window,
    group_cells,
)

FLUSHES = "monitoring_flushes"
CELLS = "monitoring_cells"
_DELTA = "delta"
_COMPACTED = "compacted"


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
                "kind": _DELTA,
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
        documents = await self._cells.find(selector).to_list(None)
        merged: dict[CellKey, RollupCell] = {}
        for document in _visible(documents):
            cell = _cell_of(document)
            existing = merged.get(cell.key)
            if existing is None:
                merged[cell.key] = cell
            else:
                existing.merge(cell)
        return sorted(merged.values(), key=lambda cell: (cell.key.start, cell.key.cell_id()))

    async def compact(self, source: SourcePartition, committed_end: int, since: datetime) -> int:
        """Merge the partition's committed documents of windows from `since` into one per
        cell; returns how many documents it deleted. Run it only between the partition's
        flushes (never beside a write)."""
        documents = await self._cells.find(
            {
                "source": source.key(),
                "flush_start": {"$lt": committed_end},
                "window_start": {"$gte": since},
            }
        ).to_list(None)
        by_cell: dict[str, list[MongoDocument]] = {}
        for document in documents:
            by_cell.setdefault(document["cell_id"], []).append(document)
        replacements: list[MongoDocument] = []
        replaced: list[str] = []
        for cell_id, group in by_cell.items():
            if len(group) < 2:
                continue
            visible = _visible(group)
            through = max(int(document["flush_start"]) for document in visible)
            merged = _cell_of(visible[0])
            for document in visible[1:]:
                merged.merge(_cell_of(document))
            replacement = {
                "_id": f"{source.key()}|compacted|{through}|{cell_id}",
                "source": source.key(),
                "flush_start": through,
                "kind": _COMPACTED,
                "window_start": merged.key.start,
                **{k: v for k, v in merged.to_dict().items() if k != "window_start"},
            }
            replacements.append(replacement)
            replaced += [str(d["_id"]) for d in group if d["_id"] != replacement["_id"]]
        await insert_new(self._cells, replacements)
        if replaced:
            await self._cells.delete_many({"_id": {"$in": replaced}})
        return len(replaced)

    async def grouped(self, query: CellQuery, keep: Sequence[str]) -> list[RollupCell]:
        """`read`, then merged over every dimension not in `keep`."""
        return group_cells(await self.read(query), keep)


def _visible(documents: list[MongoDocument]) -> list[MongoDocument]:
    """Per partition and cell: the newest compacted document and the deltas after it."""
    newest: dict[tuple[str, str], int] = {}
    for document in documents:
        if document.get("kind") == _COMPACTED:
            key = (document["source"], document["cell_id"])
            newest[key] = max(newest.get(key, -1), int(document["flush_start"]))
    visible = []
    for document in documents:
        through = newest.get((document["source"], document["cell_id"]))
        start = int(document["flush_start"])
        later = through is None or start > through
        if later or (document.get("kind") == _COMPACTED and start == through):
            visible.append(document)
    return visible


def _cell_of(document: MongoDocument) -> RollupCell:
    row = dict(document)
    row["window_start"] = row["window_start"].strftime("%Y-%m-%dT%H:%M:%SZ")
    return RollupCell.from_dict(row)


__all__ = ["CELLS", "FLUSHES", "CellQuery", "Flush", "RollupStore", "SourcePartition"]
