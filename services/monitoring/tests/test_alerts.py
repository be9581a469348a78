"""Alert rules and incidents: fire once, stay silent, resolve once, re-fire anew, resume."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from llmops.events.catalog import AlertSeverity, AlertState
from llmops_monitoring.alerts import (
    AlertEvaluator,
    AlertTransition,
    BudgetRule,
    DriftRule,
    ErrorRateRule,
    NegativeFeedbackRule,
    Observation,
    ScoreDropRule,
    ThresholdRule,
    incident_id,
    load_rules,
)
from llmops_monitoring.drift import two_proportion_z_test
from llmops_monitoring.rollups import Window

T0 = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
SCOPE = {"tenant": "acme", "model": "vllm/llama"}
LATENCY = ThresholdRule(
    id="latency-p95",
    metric="latency_p95_ms",
    threshold=2_000.0,
    hold_for=timedelta(minutes=5),
    clear_for=timedelta(minutes=2),
    group_by=("tenant", "model"),
    severity=AlertSeverity.CRITICAL,
)
# p95 latency per minute: fine, slow for 12 minutes, fine for 10, slow again for 6.
SERIES = [1_200.0] * 3 + [2_500.0] * 12 + [1_100.0] * 10 + [3_000.0] * 6


def observations(series: list[float], start: int = 0) -> list[Observation]:
    return [
        Observation("latency-p95", SCOPE, value, T0 + timedelta(minutes=start + i))
        for i, value in enumerate(series)
    ]


def run(series: list[float]) -> list[AlertTransition]:
    return AlertEvaluator([LATENCY]).observe_many(observations(series))


def test_fires_once_after_the_hold_stays_silent_and_resolves_once_after_clearing() -> None:
    evaluator = AlertEvaluator([LATENCY])
    answers = [evaluator.observe(o) for o in observations(SERIES[:25])]
    transitions = [(i, t) for i, t in enumerate(answers) if t is not None]

    assert [(i, t.state) for i, t in transitions] == [
        (8, AlertState.FIRING),  # breach from minute 3, held 5 minutes at minute 8
        (17, AlertState.RESOLVED),  # clear from minute 15, clear 2 minutes at minute 17
    ]
    firing, resolved = (t for _, t in transitions)
    assert firing.incident_id == resolved.incident_id
    assert firing.started_at == T0 + timedelta(minutes=8)
    assert resolved.resolved_at == T0 + timedelta(minutes=17)
    assert firing.value == 2_500.0
    assert firing.threshold == 2_000.0
    assert firing.scope == (("model", "vllm/llama"), ("tenant", "acme"))
    assert "latency_p95_ms=2500 above 2000" in firing.message
    assert evaluator.firing() == []


def test_refires_later_as_a_new_incident_and_replays_give_the_same_ids() -> None:
    transitions = run(SERIES)
    assert [t.state for t in transitions] == [
        AlertState.FIRING,
        AlertState.RESOLVED,
        AlertState.FIRING,
    ]
    first, _, second = transitions
    assert second.incident_id != first.incident_id
    assert second.started_at == T0 + timedelta(minutes=30)
    assert second.incident_id == incident_id("latency-p95", SCOPE, second.started_at)
    assert run(SERIES) == transitions


def test_a_breach_shorter_than_the_hold_never_fires() -> None:
    assert run([2_500.0] * 5 + [1_000.0] + [2_500.0] * 5) == []


def test_a_short_dip_does_not_resolve_while_clear_for_has_not_elapsed() -> None:
    series = [2_500.0] * 6 + [1_000.0] + [2_500.0] * 3 + [1_000.0] * 3
    assert [t.state for t in run(series)] == [AlertState.FIRING, AlertState.RESOLVED]


@pytest.mark.parametrize("cut", [2, 5, 10, 16, 20, 28])
def test_state_round_trip_resumes_where_it_stopped(cut: int) -> None:
    stream = observations(SERIES)
    before = AlertEvaluator([LATENCY])
    first_half = before.observe_many(stream[:cut])
    document = json.loads(json.dumps(before.to_dict()))

    resumed = AlertEvaluator.from_dict([LATENCY], document)
    assert resumed.to_dict() == before.to_dict()
    assert first_half + resumed.observe_many(stream[cut:]) == run(SERIES)


def test_state_of_removed_rules_is_dropped_and_old_observations_are_ignored() -> None:
    evaluator = AlertEvaluator([LATENCY])
    evaluator.observe_many(observations([2_500.0] * 6))
    assert len(evaluator.firing()) == 1
    assert AlertEvaluator.from_dict([], evaluator.to_dict()).to_dict()["states"] == []
    # A stale observation cannot resolve the incident.
    assert evaluator.observe(Observation("latency-p95", SCOPE, 10.0, T0)) is None
    assert len(evaluator.firing()) == 1


def test_scopes_are_independent_and_must_match_the_rule() -> None:
    budget = BudgetRule(id="budget", budget_usd=100.0)
    evaluator = AlertEvaluator([budget])
    fired = evaluator.observe_many(
        [
            Observation("budget", {"tenant": "acme"}, 120.0, T0),
            Observation("budget", {"tenant": "beta"}, 20.0, T0),
            Observation("budget", {"tenant": "acme"}, 130.0, T0 + timedelta(minutes=1)),
        ]
    )
    assert [(t.scope, t.state) for t in fired] == [((("tenant", "acme"),), AlertState.FIRING)]
    assert budget.window is Window.DAY
    with pytest.raises(ValueError, match="groups by"):
        evaluator.observe(Observation("budget", {"model": "x"}, 1.0, T0))
    with pytest.raises(KeyError):
        evaluator.observe(Observation("nope", {}, 1.0, T0))


def test_rates_need_enough_samples_and_no_data_counts_as_clear() -> None:
    errors = ErrorRateRule(id="errors", max_rate=0.05, min_samples=20)
    evaluator = AlertEvaluator([errors])
    assert evaluator.observe(Observation("errors", {}, 0.5, T0, samples=4)) is None
    fired = evaluator.observe(Observation("errors", {}, 0.2, T0, samples=200))
    assert fired is not None
    assert fired.state is AlertState.FIRING
    resolved = evaluator.observe(Observation("errors", {}, None, T0 + timedelta(minutes=1)))
    assert resolved is not None
    assert resolved.state is AlertState.RESOLVED
    assert resolved.value == 0.2  # no new value: the last one is reported


def test_score_drop_negative_feedback_and_drift_rules() -> None:
    drop = ScoreDropRule(id="faithfulness-drop", metric="score:faithfulness", max_drop=0.1)
    relative = ScoreDropRule(
        id="relevance-drop", metric="score:relevance", baseline=0.8, max_drop=0.25, relative=True
    )
    feedback = NegativeFeedbackRule(id="thumbs-down", max_rate=0.3)
    drift = DriftRule(id="refusal-drift", metric="refusal_rate", tenant="acme")
    evaluator = AlertEvaluator([drop, relative, feedback, drift])

    assert evaluator.observe(Observation("faithfulness-drop", {}, 0.75, T0, baseline=0.8)) is None
    dropped = evaluator.observe(Observation("faithfulness-drop", {}, 0.65, T0, baseline=0.8))
    assert dropped is not None
    assert dropped.threshold == pytest.approx(0.7)
    assert evaluator.observe(Observation("relevance-drop", {}, 0.61, T0)) is None
    assert evaluator.observe(Observation("relevance-drop", {}, 0.59, T0)) is not None
    with pytest.raises(ValueError, match="baseline"):
        evaluator.observe(Observation("faithfulness-drop", {}, 0.5, T0 + timedelta(minutes=1)))

    assert evaluator.observe(Observation("thumbs-down", {}, 0.5, T0, samples=5)) is None
    assert evaluator.observe(Observation("thumbs-down", {}, 0.5, T0, samples=50)) is not None

    report = two_proportion_z_test(50, 1_000, 90, 1_000, name="refusal_rate")
    flagged = evaluator.observe(Observation.from_drift("refusal-drift", {}, report, T0))
    assert flagged is not None
    assert flagged.state is AlertState.FIRING
    assert "refusal_rate: rate 5.00%" in flagged.message


def test_transitions_become_alert_changed_events() -> None:
    firing, resolved = run(SERIES[:25])
    event = firing.to_event()
    assert event.alert_id == firing.incident_id
    assert event.state is AlertState.FIRING
    assert event.severity is AlertSeverity.CRITICAL
    assert event.labels == SCOPE
    assert event.resolved_at is None
    assert resolved.to_event().resolved_at == T0 + timedelta(minutes=17)


def test_rules_load_from_yaml_and_json() -> None:
    rules = load_rules(
        """
rules:
  - id: latency-p95
    kind: threshold
    metric: latency_p95_ms
    threshold: 2000
    hold_for: 5m
    clear_for: 90s
    group_by: [tenant, model]
    severity: critical
  - id: acme-budget
    kind: budget
    budget_usd: 250
  - id: errors
    kind: error_rate
    max_rate: 0.05
    hold_for: PT2M
  - id: topic-drift
    kind: drift
    metric: topic_mix_js
    tenant: acme
    current: 2h
    every: 30m
"""
    )
    latency, budget, errors, drift = rules.rules
    assert isinstance(latency, ThresholdRule)
    assert latency.hold_for == timedelta(minutes=5)
    assert latency.clear_for == timedelta(seconds=90)
    assert isinstance(budget, BudgetRule)
    assert budget.group_by == ("tenant",)
    assert isinstance(errors, ErrorRateRule)
    assert errors.hold_for == timedelta(minutes=2)
    assert isinstance(drift, DriftRule)
    assert (drift.tenant, drift.current, drift.reference) == (
        "acme",
        timedelta(hours=2),
        timedelta(days=7),
    )
    assert drift.every == timedelta(minutes=30)

    as_json = json.dumps([r.model_dump(mode="json") for r in rules.rules])
    assert load_rules(as_json) == rules
    with pytest.raises(ValidationError, match="duplicate"):
        load_rules("[{id: a, kind: budget, budget_usd: 1}, {id: a, kind: budget, budget_usd: 2}]")
    with pytest.raises(ValidationError):
        load_rules("[{id: a, kind: threshold, metric: x, threshold: 1, unknown: 2}]")
