"""Rollups: window routing and boundaries, totals and derived rates, draining, merging, storage."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from llmops.events.catalog import (
    CONTRACTS,
    CacheResult,
    CallStatus,
    CompletionRecorded,
    ErrorInfo,
    PromptRef,
    RedactionPolicy,
    TokenUsage,
    Topic,
)
from llmops.events.envelope import new_event
from llmops_monitoring.rollups import (
    ANY,
    Aggregate,
    CellKey,
    CompletionFacts,
    Dimensions,
    RollupBook,
    RollupCell,
    Window,
    completion_facts,
    group_cells,
)

NOON = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
ACME = Dimensions(tenant="acme", model="vllm/llama", prompt="support@3", api_key_id="key-1")


def facts(
    time: datetime,
    *,
    dimensions: Dimensions = ACME,
    latency_ms: float = 800.0,
    cost_usd: float = 0.002,
    failed: bool = False,
    cache: CacheResult = CacheResult.NONE,
) -> CompletionFacts:
    return CompletionFacts(
        time=time,
        dimensions=dimensions,
        latency_ms=latency_ms,
        ttft_ms=latency_ms / 4,
        prompt_tokens=100,
        completion_tokens=40,
        cost_usd=cost_usd,
        cache=cache,
        failed=failed,
        error_code="upstream_timeout" if failed else None,
    )


def add(aggregate: Aggregate, observation: CompletionFacts) -> None:
    aggregate.add_completion(
        latency_ms=observation.latency_ms,
        ttft_ms=observation.ttft_ms,
        prompt_tokens=observation.prompt_tokens,
        completion_tokens=observation.completion_tokens,
        cost_usd=observation.cost_usd,
        cache=observation.cache,
        failed=observation.failed,
        error_code=observation.error_code,
    )


def test_window_start_is_aligned_and_a_minute_boundary_splits_cells() -> None:
    just_before = NOON + timedelta(seconds=59, milliseconds=999)
    assert Window.MINUTE.start_of(just_before) == NOON
    assert Window.MINUTE.start_of(NOON + timedelta(minutes=1)) == NOON + timedelta(minutes=1)
    assert Window.HOUR.start_of(just_before) == NOON
    assert Window.DAY.start_of(just_before) == datetime(2025, 3, 14, tzinfo=UTC)
    assert [w.seconds for w in Window] == [60, 3_600, 86_400]

    book = RollupBook()
    book.add_completion(facts(just_before))
    book.add_completion(facts(NOON + timedelta(minutes=1)))
    cells = book.cells()

    by_window = {w: [c for c in cells if c.key.window is w] for w in Window}
    assert [c.key.start for c in by_window[Window.MINUTE]] == [NOON, NOON + timedelta(minutes=1)]
    assert [c.aggregate.requests for c in by_window[Window.MINUTE]] == [1, 1]
    assert [c.aggregate.requests for c in by_window[Window.HOUR]] == [2]
    assert [c.aggregate.requests for c in by_window[Window.DAY]] == [2]


def test_totals_and_derived_rates_match_the_events() -> None:
    rng = np.random.default_rng(21)
    n = 2_000
    latencies = rng.lognormal(6.5, 0.8, size=n)
    costs = rng.uniform(0.0, 0.01, size=n)
    failed = rng.random(n) < 0.07
    caches = rng.choice(list(CacheResult), size=n, p=[0.8, 0.15, 0.05])
    book = RollupBook(windows=[Window.HOUR])
    for i in range(n):
        book.add_completion(
            facts(
                NOON + timedelta(seconds=i),
                latency_ms=float(latencies[i]),
                cost_usd=float(costs[i]),
                failed=bool(failed[i]),
                cache=CacheResult(caches[i]),
            )
        )
    (cell,) = book.cells()
    total = cell.aggregate

    assert total.requests == n
    assert total.errors == int(failed.sum())
    assert total.errors_by_code == {"upstream_timeout": int(failed.sum())}
    assert total.error_rate == pytest.approx(failed.mean())
    assert total.cost_usd == pytest.approx(math.fsum(costs.tolist()), rel=1e-12)
    assert total.mean_cost_usd == pytest.approx(costs.mean(), rel=1e-12)
    assert total.prompt_tokens == 100 * n
    assert total.total_tokens == 140 * n
    hits = int(np.isin(caches, [CacheResult.EXACT, CacheResult.SEMANTIC]).sum())
    assert total.cache_exact + total.cache_semantic == hits
    assert total.cache_hit_rate == pytest.approx(hits / n)
    # Latency quantiles cover successful calls only.
    ok_latencies = latencies[~failed]
    exact_p95 = float(np.quantile(ok_latencies, 0.95, method="lower"))
    assert total.metric("latency_p95_ms") == pytest.approx(exact_p95, rel=0.01)
    assert total.latency_ms.count == int((~failed).sum())
    assert total.metric("ttft_p50_ms") is not None


def test_scores_feedback_and_ingest_accumulate_with_rates() -> None:
    book = RollupBook(windows=[Window.DAY])
    for value in (0.9, 0.7, 0.8):
        book.add_score(time=NOON, dimensions=ACME, metric="faithfulness", value=value)
    for score in (1.0, 0.0, 0.25, 1.0):
        book.add_feedback(time=NOON, dimensions=ACME, score=score)
    book.add_ingest(time=NOON, tenant="acme", documents=9, chunks=120, failed=1)
    cells = {c.key.dimensions: c.aggregate for c in book.cells()}

    quality = cells[ACME]
    assert quality.score_mean("faithfulness") == pytest.approx(0.8)
    assert quality.metric("score:faithfulness") == pytest.approx(0.8)
    assert quality.score_mean("relevance") is None
    assert quality.feedback_mean == pytest.approx(0.5625)
    assert quality.negative_feedback_rate == pytest.approx(0.5)
    assert quality.error_rate is None  # no completions: no rate, not zero

    ingest = cells[Dimensions(tenant="acme")]
    assert (ingest.ingest_documents, ingest.ingest_chunks, ingest.ingest_failed) == (9, 120, 1)
    assert ingest.ingest_failure_rate == pytest.approx(0.1)
    with pytest.raises(KeyError):
        ingest.metric("no_such_metric")


def test_completion_facts_reads_the_event_and_its_envelope() -> None:
    event = CompletionRecorded(
        completion_id="chatcmpl-1",
        request_id="req-1",
        api_key_id="key-1",
        requested_model="llama",
        served_model="vllm/llama",
        prompt=PromptRef(name="support", version=3),
        output="I'm sorry, but I can't help with that.",
        redaction=RedactionPolicy.NONE,
        usage=TokenUsage(prompt_tokens=120, completion_tokens=12, total_tokens=132),
        latency_ms=950.0,
        time_to_first_token_ms=210.0,
        cost_usd=0.0031,
        cache=CacheResult.SEMANTIC,
        stream=True,
        status=CallStatus.OK,
    )
    envelope = new_event(
        CONTRACTS[Topic.LLM_COMPLETIONS],
        event,
        source="gateway",
        tenant="acme",
        subject="chatcmpl-1",
        time=NOON,
    )
    got = completion_facts(envelope)

    assert got.time == NOON
    assert got.dimensions == ACME
    assert (got.prompt_tokens, got.completion_tokens, got.cost_usd) == (120, 12, 0.0031)
    assert got.ttft_ms == 210.0
    assert got.cache is CacheResult.SEMANTIC
    assert not got.failed
    assert got.refused

    failed = event.model_copy(
        update={
            "status": CallStatus.ERROR,
            "prompt": None,
            "output": None,
            "error": ErrorInfo(code="rate_limited", message="slow down"),
        }
    )
    envelope = new_event(
        CONTRACTS[Topic.LLM_COMPLETIONS], failed, source="gateway", tenant="acme", subject="c"
    )
    got = completion_facts(envelope)
    assert got.failed
    assert got.error_code == "rate_limited"
    assert got.dimensions.prompt == "-"
    assert not got.refused


def test_a_late_delta_merges_into_the_stored_cell_of_its_key() -> None:
    (stored,) = book_of(facts(NOON, cost_usd=0.5)).cells()
    late = facts(NOON + timedelta(seconds=20), cost_usd=0.25)  # after the first was stored
    (partial,) = book_of(late).cells()

    assert partial.key == stored.key
    stored.merge(partial)
    assert stored.aggregate.requests == 2
    assert stored.aggregate.cost_usd == pytest.approx(0.75)
    other = RollupCell(CellKey(Window.MINUTE, NOON, Dimensions(tenant="other")))
    with pytest.raises(ValueError, match="cannot merge"):
        stored.merge(other)


def test_merge_of_split_streams_equals_one_stream_and_survives_json() -> None:
    rng = np.random.default_rng(4)
    observations = [
        facts(
            NOON + timedelta(seconds=i),
            latency_ms=float(rng.lognormal(6, 1)),
            cost_usd=float(rng.uniform(0, 0.01)),
            failed=bool(rng.random() < 0.1),
        )
        for i in range(500)
    ]
    whole, first, second = Aggregate(), Aggregate(), Aggregate()
    for i, observation in enumerate(observations):
        for aggregate in (whole, first if i % 2 else second):
            add(aggregate, observation)
            aggregate.add_score("faithfulness", 0.5)
    first.merge(second)

    merged, single = first.summary(), whole.summary()
    assert merged.keys() == single.keys()
    for name, value in single.items():
        assert merged[name] == (None if value is None else pytest.approx(value, rel=1e-12)), name
    assert first.latency_ms.quantiles([0.5, 0.99]) == whole.latency_ms.quantiles([0.5, 0.99])

    cell = RollupCell(CellKey(Window.MINUTE, NOON, ACME), whole)
    document = json.loads(json.dumps(cell.to_dict()))
    assert document["cell_id"] == "1m|2025-03-14T12:00:00Z|acme|vllm/llama|support@3|key-1"
    assert document["window_start"] == "2025-03-14T12:00:00Z"
    restored = RollupCell.from_dict(document | {"_id": "ignored"})
    assert restored == cell
    assert restored.aggregate.summary() == cell.aggregate.summary()


def test_group_cells_sums_over_dropped_dimensions() -> None:
    book = RollupBook(windows=[Window.DAY])
    for model, cost in (("a", 1.0), ("b", 2.0), ("a", 4.0)):
        dims = Dimensions(tenant="acme", model=model, api_key_id="k")
        book.add_completion(facts(NOON, dimensions=dims, cost_usd=cost))
    book.add_completion(facts(NOON, dimensions=Dimensions(tenant="beta"), cost_usd=8.0))

    per_tenant = {
        c.key.dimensions.tenant: c.aggregate.cost_usd
        for c in group_cells(book.cells(), keep={"tenant"})
    }
    assert per_tenant == {"acme": 7.0, "beta": 8.0}
    (acme,) = [
        c for c in group_cells(book.cells(), {"tenant"}) if c.key.dimensions.tenant == "acme"
    ]
    assert acme.key.dimensions.model == ANY
    # grouping builds new cells: the book's own are as they were
    assert sorted(c.aggregate.cost_usd for c in book.cells()) == [2.0, 5.0, 8.0]
    with pytest.raises(ValueError, match="unknown dimensions"):
        group_cells(book.cells(), keep={"region"})


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        RollupBook().add_completion(facts(datetime(2025, 1, 1, 12, 0)))


def book_of(*observations: CompletionFacts) -> RollupBook:
    book = RollupBook(windows=[Window.MINUTE])
    for observation in observations:
        book.add_completion(observation)
    return book
