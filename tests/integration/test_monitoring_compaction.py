"""Rollup deltas compacted into one document per cell answer the same queries, also when a
compaction stopped between its insert and its deletes, or a flush left deltas uncommitted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from llmops.events.catalog import CacheResult
from llmops.storage import MongoDocument
from llmops_monitoring.rollup_store import CELLS, CellQuery, Flush, RollupStore, SourcePartition
from llmops_monitoring.rollups import CompletionFacts as Facts
from llmops_monitoring.rollups import Dimensions, RollupBook, Window, with_coarser_windows

pytestmark = [pytest.mark.mongo]

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SOURCE = SourcePartition("llm.completions", 0)
MINUTES = CellQuery(Window.MINUTE, START, START + timedelta(hours=1))
DAY = CellQuery(Window.DAY, START.replace(hour=0), START.replace(hour=0) + timedelta(days=1))


@pytest.fixture
async def db(mongo_url: str, mongo_database: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[MongoDocument] = AsyncMongoClient(mongo_url, tz_aware=True)
    await RollupStore.create_indexes(client[mongo_database])
    yield client[mongo_database]
    await client.close()


def flush(start: int, count: int) -> Flush:
    """`count` completions from offset `start`, two tenants, a latency per offset."""
    book = RollupBook((Window.MINUTE,))
    for offset in range(start, start + count):
        book.add_completion(
            Facts(
                time=START + timedelta(seconds=offset),
                dimensions=Dimensions(tenant=f"t{offset % 2}", model="m"),
                latency_ms=100.0 + offset,
                ttft_ms=None,
                prompt_tokens=offset,
                completion_tokens=1,
                cost_usd=0.001,
                cache=CacheResult.NONE,
                failed=False,
            )
        )
    cells = with_coarser_windows(book.cells(), (Window.HOUR, Window.DAY))
    return Flush(SOURCE, start, start + count, cells)


def answers(cells: list[Any]) -> dict[str, Any]:
    return {
        cell.key.cell_id(): (
            cell.aggregate.requests,
            cell.aggregate.prompt_tokens,
            cell.aggregate.latency_ms.quantiles((0.5, 0.99)),
        )
        for cell in cells
    }


async def test_compaction_keeps_every_answer_and_leaves_one_document_per_cell(db: Any) -> None:
    store = RollupStore(db)
    for start in range(0, 600, 50):  # 12 flushes of 50 events over 10 minutes
        await store.write(flush(start, 50))
    before = (answers(await store.read(MINUTES)), answers(await store.read(DAY)))
    documents = await db[CELLS].count_documents({})

    deleted = await store.compact(SOURCE, 600, START - timedelta(days=1))

    assert deleted > documents // 2
    # one document per cell now: 10 minutes, 1 hour and 1 day, for 2 tenants
    assert await db[CELLS].count_documents({}) == (10 + 1 + 1) * 2
    assert (answers(await store.read(MINUTES)), answers(await store.read(DAY))) == before
    assert sum(r for r, _, _ in answers(await store.read(DAY)).values()) == 600

    # later flushes add to the compacted cells; compacting again merges them in
    await store.write(flush(600, 60))
    await store.compact(SOURCE, 660, START - timedelta(days=1))
    day = answers(await store.read(DAY))
    assert sum(r for r, _, _ in day.values()) == 660
    assert sum(t for _, t, _ in day.values()) == sum(range(660))


async def test_a_compaction_stopped_before_its_deletes_changes_no_answer(db: Any) -> None:
    store = RollupStore(db)
    for start in range(0, 300, 50):
        await store.write(flush(start, 50))
    before = answers(await store.read(DAY))

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("killed before the deletes")

    with (
        mock.patch.object(AsyncCollection, "delete_many", crash),
        pytest.raises(ConnectionError),
    ):
        await store.compact(SOURCE, 300, START - timedelta(days=1))
    assert answers(await store.read(DAY)) == before  # compacted and replaced both there

    await store.write(flush(300, 50))  # a flush after the interrupted compaction
    await store.compact(SOURCE, 350, START - timedelta(days=1))
    assert sum(r for r, _, _ in answers(await store.read(DAY)).values()) == 350


async def test_uncommitted_deltas_are_neither_compacted_nor_read_after_recovery(db: Any) -> None:
    store = RollupStore(db)
    await store.write(flush(0, 100))
    orphan = flush(100, 40)
    with (
        mock.patch.object(AsyncCollection, "insert_one", side_effect=ConnectionError("down")),
        pytest.raises(ConnectionError),
    ):
        await store.write(orphan)  # cells inserted, marker not: a crash in between
    await store.compact(SOURCE, 100, START - timedelta(days=1))  # committed end: 100

    assert await store.recover(SOURCE) == 100
    assert sum(r for r, _, _ in answers(await store.read(DAY)).values()) == 100
