"""The columnar batch fold agrees with the per-record path and hands back what it cannot read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from llmops.events.catalog import ChatMessage, ChatRole
from llmops.events.codec import EventCodec
from llmops.settings import WireFormat
from llmops.traffic import COMPLETIONS, CompletionTraffic
from llmops_monitoring.completion_batches import (
    RecentIds,
    cell_key_text,
    first_of_each,
    fold_completions,
)
from llmops_monitoring.rollups import LATENCY_QUANTILES, RollupBook, Window
from llmops_monitoring.stream_facts import completion_from_json

CODEC = EventCodec(COMPLETIONS, WireFormat.JSON)


def encoded(count: int, error_every: int = 0) -> list[bytes]:
    start = datetime(2026, 11, 23, 9, 58, tzinfo=UTC)
    events = CompletionTraffic(start=start, error_every=error_every).events(count)
    changes: dict[int, dict[str, Any]] = {
        5: {"output": "I'm sorry, but I cannot help with that."},
        11: {"output": "As an AI language model I won\u2019t say."},
        7: {"prompt": None},
        8: {"time_to_first_token_ms": None},
        9: {"messages": [ChatMessage(role=ChatRole.USER, content="line\nbreak")]},
    }
    for position, update in changes.items():
        event = events[position]
        events[position] = event.model_copy(update={"data": event.data.model_copy(update=update)})
    return [CODEC.encode(event).value for event in events]


def test_the_batch_fold_gives_the_per_record_aggregates() -> None:
    values = encoded(600, error_every=7)
    batch = fold_completions(values, RecentIds(10_000))
    assert batch.unread == []
    assert batch.duplicates == 0
    assert len(batch.read) == 600

    one_by_one = RollupBook((Window.MINUTE,))
    for value in values:
        one_by_one.add_completion(completion_from_json(value).facts)
    expected = {cell.key: cell.aggregate for cell in one_by_one.cells()}

    assert batch.cells.keys() == expected.keys()
    for key, aggregate in batch.cells.items():
        want = expected[key]
        for name in ("requests", "errors", "refusals", "prompt_tokens", "cache_exact"):
            assert getattr(aggregate, name) == getattr(want, name), (key, name)
        assert aggregate.errors_by_code == want.errors_by_code
        assert aggregate.cost_usd == pytest.approx(want.cost_usd, rel=1e-12)
        for sketch, reference in (
            (aggregate.latency_ms, want.latency_ms),
            (aggregate.ttft_ms, want.ttft_ms),
        ):
            assert sketch.count == reference.count
            assert sketch.quantiles(LATENCY_QUANTILES) == pytest.approx(
                reference.quantiles(LATENCY_QUANTILES), rel=1e-9
            )
    assert sum(a.refusals for a in batch.cells.values()) == 2


def test_records_it_cannot_check_go_back_and_duplicates_are_dropped() -> None:
    values = encoded(20)
    recent = RecentIds(100)
    broken = values[3].replace(b'"latency_ms":', b'"latency_ms":"slow","x":')
    future = values[4].replace(b'"schema_version":1', b'"schema_version":2')
    batch = fold_completions([*values[:3], broken, future, values[0]], recent)
    assert batch.unread == [3, 4]
    assert batch.duplicates == 1
    assert sum(a.requests for a in batch.cells.values()) == 3

    unparsable = fold_completions([values[10], b"{not json", values[11]], recent)
    assert unparsable.unread == [1]
    assert unparsable.read == [0, 2]


def test_sample_candidates_are_the_first_rows_of_each_cell() -> None:
    groups = np.array([2, 0, 2, 1, 2, 0, 2], dtype=np.int64)
    assert first_of_each(groups, 2).tolist() == [0, 1, 2, 3, 5]
    assert first_of_each(groups, 0).tolist() == []

    values = encoded(
        240, error_every=7
    )  # 50 ms apart: 12 s of traffic, one minute's cells per dimension
    batch = fold_completions(values, RecentIds(1_000), sample_limit=3)
    per_cell: dict[str, list[int]] = {}
    for position, cell_key in batch.sample_candidates:
        per_cell.setdefault(cell_key, []).append(position)
    rows_of: dict[str, list[int]] = {}
    for position, value in enumerate(values):
        facts = completion_from_json(value).facts
        rows_of.setdefault(cell_key_text(facts), [])
        if not facts.failed:  # failed calls have no answer to sample
            rows_of[cell_key_text(facts)].append(position)
    assert len(rows_of) == len(batch.cells) == 7  # six dimension sets, one without prompt
    # each cell offers its first three answered rows (the one-row cell its only one), by
    # the keys the per-record path gives them
    assert per_cell == {key: rows[:3] for key, rows in rows_of.items() if rows}


def test_recent_ids_find_duplicates_within_and_across_batches_and_forget() -> None:
    recent = RecentIds(100)
    assert recent.first_sightings(["a", "b", "c"]).tolist() == [True, True, True]
    assert recent.first_sightings(["d", "b", "d", "e"]).tolist() == [True, False, False, True]
    recent.forget(["d", "e"])
    assert recent.first_sightings(["e", "a", "d"]).tolist() == [True, False, True]
    assert RecentIds(0).first_sightings(["x", "x"]).tolist() == [True, True]


def test_a_fold_names_the_ids_it_remembered() -> None:
    values = encoded(12)[:6]
    recent = RecentIds(100)
    first = fold_completions(values[:4], recent)
    again = fold_completions([values[2], values[4], values[4], values[5]], recent)
    ids = [completion_from_json(value).event_id for value in values]
    assert first.remembered == ids[:4]
    assert again.remembered == ids[4:6]
    assert again.duplicates == 2
