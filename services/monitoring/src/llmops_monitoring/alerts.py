"""Alert rules and the incident state machine that turns observations into transitions.

The caller computes each rule's `metric` for each scope (say p95 latency per tenant and model
from the minute rollups) and feeds `Observation`s; the `AlertEvaluator` answers with a
`firing` transition once the condition has held for `hold_for`, nothing while it keeps
firing, and `resolved` once it has been clear for `clear_for`. No data, or fewer samples than
`min_samples`, counts as clear, as a vanished series does in Prometheus.

Incident ids are uuid5 of rule, scope and firing time, so replaying the same observations
gives the same ids, and the evaluator's state is a plain dict that survives a restart.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from llmops.events.catalog import AlertChanged, AlertSeverity, AlertState
from llmops_monitoring.drift import DriftReport
from llmops_monitoring.rollups import Window

INCIDENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "llmops:monitoring:incidents")
"""Namespace of incident ids; changing it changes every id, so it never changes."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0}


def _parse_duration(value: object) -> object:
    """Accept `90s`, `5m`, `1h`, `1d` and plain seconds besides pydantic's ISO-8601 durations."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class _Rule(BaseModel):
    """What every rule has: identity, severity, scope labels and timing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$", description="Stable rule id.")
    description: str = Field(default="", description="What the rule guards, for humans.")
    severity: AlertSeverity = AlertSeverity.WARNING
    metric: str = Field(description="Rollup metric the caller computes for the rule.")
    window: Window = Field(
        default=Window.MINUTE, description="Rollup window the metric is read on."
    )
    group_by: tuple[str, ...] = Field(
        default=(),
        description="Labels of a scope, e.g. (tenant, model); observations carry exactly these.",
    )
    hold_for: Duration = Field(
        default=timedelta(0), description="How long the condition must hold before firing."
    )
    clear_for: Duration = Field(
        default=timedelta(0), description="How long it must be clear before resolving."
    )
    min_samples: int = Field(
        default=0, ge=0, description="Observations with fewer samples count as no data."
    )

    def direction(self) -> Literal["above", "below"]:
        """Whether the value breaches by rising above the limit or falling below it."""
        return "above"

    def limit(self, observation: Observation) -> float:
        """The value the observation is compared with."""
        raise NotImplementedError

    def breached(self, observation: Observation) -> bool:
        """Whether the observation violates the rule; no data or too few samples never does."""
        if observation.value is None:
            return False
        if observation.samples is not None and observation.samples < self.min_samples:
            return False
        limit = self.limit(observation)
        if self.direction() == "above":
            return observation.value > limit
        return observation.value < limit


class ThresholdRule(_Rule):
    """Any rollup metric above or below a fixed threshold, e.g. latency_p95_ms above 2000."""

    kind: Literal["threshold"] = "threshold"
    op: Literal["above", "below"] = "above"
    threshold: float

    def direction(self) -> Literal["above", "below"]:
        return self.op

    def limit(self, observation: Observation) -> float:
        return self.threshold


class ErrorRateRule(_Rule):
    """Failed calls over all calls above `max_rate`."""

    kind: Literal["error_rate"] = "error_rate"
    metric: str = "error_rate"
    max_rate: float = Field(ge=0.0, le=1.0)
    min_samples: int = Field(default=20, ge=0)

    def limit(self, observation: Observation) -> float:
        return self.max_rate


class BudgetRule(_Rule):
    """A tenant's cost over a UTC day above its budget; fires as soon as it is crossed."""

    kind: Literal["budget"] = "budget"
    metric: str = "cost_usd"
    window: Window = Window.DAY
    group_by: tuple[str, ...] = ("tenant",)
    budget_usd: float = Field(gt=0.0)

    def limit(self, observation: Observation) -> float:
        return self.budget_usd


class ScoreDropRule(_Rule):
    """An evaluation score fallen more than `max_drop` below a baseline.

    The baseline is fixed in the rule or sent with each observation (e.g. last week's mean);
    `relative` reads `max_drop` as a fraction of the baseline.
    """

    kind: Literal["score_drop"] = "score_drop"
    baseline: float | None = None
    max_drop: float = Field(gt=0.0)
    relative: bool = False

    def direction(self) -> Literal["above", "below"]:
        return "below"

    def limit(self, observation: Observation) -> float:
        baseline = observation.baseline if observation.baseline is not None else self.baseline
        if baseline is None:
            raise ValueError(f"rule {self.id} needs a baseline in the rule or the observation")
        return baseline * (1.0 - self.max_drop) if self.relative else baseline - self.max_drop


class NegativeFeedbackRule(_Rule):
    """Share of negative feedback above `max_rate`."""

    kind: Literal["negative_feedback"] = "negative_feedback"
    metric: str = "negative_feedback_rate"
    max_rate: float = Field(ge=0.0, le=1.0)
    min_samples: int = Field(default=10, ge=0)

    def limit(self, observation: Observation) -> float:
        return self.max_rate


class DriftRule(_Rule):
    """A drift check (`metric`, e.g. `topic_mix_chi2`) flagged drift between the `current`
    window ending now and the `reference` window before it, for one tenant and optionally
    one prompt and collection; run every `every`. Observations carry 1.0 when flagged."""

    kind: Literal["drift"] = "drift"
    tenant: str = Field(min_length=1)
    prompt: str | None = Field(default=None, description="`name@version`; None: every prompt.")
    collection: str | None = None
    current: Duration = Field(default=timedelta(hours=1), description="Window ending now.")
    reference: Duration = Field(
        default=timedelta(days=7), description="Window ending where `current` starts."
    )
    every: Duration = Field(default=timedelta(minutes=15), description="How often to compare.")

    def limit(self, observation: Observation) -> float:
        return 0.5


AlertRule = Annotated[
    ThresholdRule | ErrorRateRule | BudgetRule | ScoreDropRule | NegativeFeedbackRule | DriftRule,
    Field(discriminator="kind"),
]


class AlertRuleSet(BaseModel):
    """The rules of a deployment, as configured in YAML or JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[AlertRule, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> AlertRuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate alert rule id {rule.id!r}")
            seen.add(rule.id)
        return self


def load_rules(text: str) -> AlertRuleSet:
    """Parse rules from YAML or JSON text: `{rules: [...]}` or a bare list of rules."""
    data = yaml.safe_load(text)
    if isinstance(data, list):
        data = {"rules": data}
    return AlertRuleSet.model_validate(data or {})


# ---- observations and transitions -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """The value of one rule's metric for one scope at one time."""

    rule_id: str
    scope: Mapping[str, str]
    value: float | None
    time: datetime
    samples: int | None = None
    """Requests or feedbacks behind a rate, checked against the rule's `min_samples`."""
    baseline: float | None = None
    """Baseline for score-drop rules that take it from the caller."""
    detail: str = ""
    """Context for the message, e.g. a drift report's description."""

    @classmethod
    def from_drift(
        cls, rule_id: str, scope: Mapping[str, str], report: DriftReport, time: datetime
    ) -> Observation:
        """An observation for a `DriftRule` from a drift report."""
        return cls(
            rule_id=rule_id,
            scope=scope,
            value=1.0 if report.drifted else 0.0,
            time=time,
            samples=report.current_size,
            detail=f"{report.name}: {report.description}",
        )


@dataclass(frozen=True, slots=True)
class Incident:
    """One firing of a rule for a scope, from `firing` to `resolved`."""

    incident_id: str
    rule_id: str
    scope: tuple[tuple[str, str], ...]
    started_at: datetime
    breach_since: datetime
    value: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON or MongoDB."""
        return {
            "incident_id": self.incident_id,
            "rule_id": self.rule_id,
            "scope": dict(self.scope),
            "started_at": _iso(self.started_at),
            "breach_since": _iso(self.breach_since),
            "value": self.value,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Incident:
        """Read what `to_dict` wrote."""
        return cls(
            incident_id=str(data["incident_id"]),
            rule_id=str(data["rule_id"]),
            scope=_scope_items(data["scope"]),
            started_at=_parse_iso(data["started_at"]),
            breach_since=_parse_iso(data["breach_since"]),
            value=float(data["value"]),
            threshold=float(data["threshold"]),
        )


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """An incident started firing or resolved: what gets published on monitoring.alerts."""

    state: AlertState
    incident_id: str
    rule_id: str
    severity: AlertSeverity
    scope: tuple[tuple[str, str], ...]
    value: float
    threshold: float
    started_at: datetime
    resolved_at: datetime | None
    message: str

    def to_event(self) -> AlertChanged:
        """The `AlertChanged` payload for topic monitoring.alerts, keyed by incident id."""
        return AlertChanged(
            alert_id=self.incident_id,
            rule_name=self.rule_id,
            state=self.state,
            severity=self.severity,
            labels=dict(self.scope),
            value=self.value,
            threshold=self.threshold,
            started_at=self.started_at,
            resolved_at=self.resolved_at,
            message=self.message,
        )


@dataclass(slots=True)
class _ScopeState:
    """Where one (rule, scope) stands; dropped again once idle."""

    breach_since: datetime | None = None
    clear_since: datetime | None = None
    last_time: datetime | None = None
    incident: Incident | None = None
    last_value: float | None = field(default=None)

    @property
    def idle(self) -> bool:
        return self.incident is None and self.breach_since is None


def incident_id(rule_id: str, scope: Mapping[str, str], started_at: datetime) -> str:
    """Deterministic id of the incident of `rule_id` for `scope` that fired at `started_at`."""
    name = json.dumps([rule_id, sorted(scope.items()), _iso(started_at)], separators=(",", ":"))
    return str(uuid.uuid5(INCIDENT_NAMESPACE, name))


class AlertEvaluator:
    """Per-(rule, scope) pending/firing/clearing state over a stream of observations.

    Observations for one (rule, scope) must come in time order; an older one than the last
    seen is ignored so a replayed tail cannot flip state backwards.
    """

    def __init__(self, rules: AlertRuleSet | Iterable[AlertRule]) -> None:
        rule_list = rules.rules if isinstance(rules, AlertRuleSet) else tuple(rules)
        self.rules: dict[str, AlertRule] = {}
        for rule in rule_list:
            if rule.id in self.rules:
                raise ValueError(f"duplicate alert rule id {rule.id!r}")
            self.rules[rule.id] = rule
        self._states: dict[tuple[str, tuple[tuple[str, str], ...]], _ScopeState] = {}

    def observe(self, observation: Observation) -> AlertTransition | None:
        """Advance the state of the observation's (rule, scope); return a transition if any."""
        rule = self.rules.get(observation.rule_id)
        if rule is None:
            raise KeyError(f"unknown alert rule {observation.rule_id!r}")
        if set(observation.scope) != set(rule.group_by):
            raise ValueError(
                f"rule {rule.id} groups by {sorted(rule.group_by)}, "
                f"observation scope has {sorted(observation.scope)}"
            )
        now = _utc(observation.time)
        scope = _scope_items(observation.scope)
        key = (rule.id, scope)
        state = self._states.get(key) or _ScopeState()
        if state.last_time is not None and now < state.last_time:
            return None
        state.last_time = now
        transition = self._advance(rule, scope, state, observation, now)
        if state.idle:
            self._states.pop(key, None)
        else:
            self._states[key] = state
        return transition

    def observe_many(self, observations: Iterable[Observation]) -> list[AlertTransition]:
        """Feed observations in order; return the transitions they caused."""
        return [t for o in observations if (t := self.observe(o)) is not None]

    def _advance(
        self,
        rule: AlertRule,
        scope: tuple[tuple[str, str], ...],
        state: _ScopeState,
        observation: Observation,
        now: datetime,
    ) -> AlertTransition | None:
        breached = rule.breached(observation)
        if observation.value is not None:
            state.last_value = observation.value
        if state.incident is None:
            if not breached:
                state.breach_since = None
                return None
            if state.breach_since is None:
                state.breach_since = now
            if now - state.breach_since < rule.hold_for:
                return None
            threshold = rule.limit(observation)
            value = observation.value
            assert value is not None  # a breach always has a value
            state.incident = Incident(
                incident_id=incident_id(rule.id, dict(scope), now),
                rule_id=rule.id,
                scope=scope,
                started_at=now,
                breach_since=state.breach_since,
                value=value,
                threshold=threshold,
            )
            state.clear_since = None
            return self._transition(
                rule, state.incident, AlertState.FIRING, value, None, observation
            )
        if breached:
            state.clear_since = None
            return None
        if state.clear_since is None:
            state.clear_since = now
        if now - state.clear_since < rule.clear_for:
            return None
        incident = state.incident
        value = observation.value if observation.value is not None else incident.value
        state.incident = None
        state.breach_since = None
        state.clear_since = None
        return self._transition(rule, incident, AlertState.RESOLVED, value, now, observation)

    @staticmethod
    def _transition(
        rule: AlertRule,
        incident: Incident,
        alert_state: AlertState,
        value: float,
        resolved_at: datetime | None,
        observation: Observation,
    ) -> AlertTransition:
        scope_text = ", ".join(f"{k}={v}" for k, v in incident.scope) or "global"
        if alert_state is AlertState.FIRING:
            verb = rule.direction()
            held = f" for {rule.hold_for}" if rule.hold_for else ""
            message = (
                f"[{rule.severity.value}] {rule.id} ({scope_text}): {rule.metric}={value:.4g} "
                f"{verb} {incident.threshold:.4g}{held}"
            )
        else:
            message = (
                f"[resolved] {rule.id} ({scope_text}): {rule.metric}={value:.4g}, "
                f"limit {incident.threshold:.4g}"
            )
        if observation.detail:
            message = f"{message}; {observation.detail}"
        if rule.description:
            message = f"{message} - {rule.description}"
        return AlertTransition(
            state=alert_state,
            incident_id=incident.incident_id,
            rule_id=rule.id,
            severity=rule.severity,
            scope=incident.scope,
            value=value,
            threshold=incident.threshold,
            started_at=incident.started_at,
            resolved_at=resolved_at,
            message=message,
        )

    def firing(self) -> list[Incident]:
        """Incidents firing now, oldest first."""
        incidents = [s.incident for s in self._states.values() if s.incident is not None]
        return sorted(incidents, key=lambda i: (i.started_at, i.incident_id))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every non-idle (rule, scope) state, for JSON or MongoDB."""
        return {
            "version": 1,
            "states": [
                {
                    "rule_id": rule_id,
                    "scope": dict(scope),
                    "breach_since": _iso_or_none(state.breach_since),
                    "clear_since": _iso_or_none(state.clear_since),
                    "last_time": _iso_or_none(state.last_time),
                    "last_value": state.last_value,
                    "incident": None if state.incident is None else state.incident.to_dict(),
                }
                for (rule_id, scope), state in sorted(self._states.items())
            ],
        }

    @classmethod
    def from_dict(
        cls, rules: AlertRuleSet | Iterable[AlertRule], data: Mapping[str, Any]
    ) -> AlertEvaluator:
        """Resume from `to_dict` output; states of rules no longer configured are dropped."""
        if data.get("version") != 1:
            raise ValueError(f"unsupported alert state version {data.get('version')!r}")
        evaluator = cls(rules)
        for row in data.get("states", []):
            if row["rule_id"] not in evaluator.rules:
                continue
            incident = row.get("incident")
            state = _ScopeState(
                breach_since=_parse_iso_or_none(row.get("breach_since")),
                clear_since=_parse_iso_or_none(row.get("clear_since")),
                last_time=_parse_iso_or_none(row.get("last_time")),
                incident=None if incident is None else Incident.from_dict(incident),
                last_value=row.get("last_value"),
            )
            if not state.idle:
                evaluator._states[(str(row["rule_id"]), _scope_items(row["scope"]))] = state
        return evaluator


def _scope_items(scope: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in scope.items()))


def _utc(time: datetime) -> datetime:
    if time.tzinfo is None:
        raise ValueError(f"naive datetime {time!r}: alerts need timezone-aware times")
    return time.astimezone(UTC)


def _iso(time: datetime) -> str:
    return _utc(time).isoformat().replace("+00:00", "Z")


def _iso_or_none(time: datetime | None) -> str | None:
    return None if time is None else _iso(time)


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _parse_iso_or_none(text: str | None) -> datetime | None:
    return None if text is None else _parse_iso(text)
