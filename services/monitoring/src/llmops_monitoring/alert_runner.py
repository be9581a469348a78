"""Evaluate the alert rules on the stored rollups, announce transitions, keep the state.

Every `alert_interval_s` the replica holding the evaluator lease (one at a time, so two
replicas never open two incidents for one breach) reads, for each rule, the cells of the
window instance that contains now (this minute, this hour, this UTC day), groups them by
the rule's labels and feeds the values to the `AlertEvaluator`. A score-drop rule without
a fixed baseline compares with the previous window instance. Scopes of a firing incident
that have no data any more are observed as such, so they resolve.

A transition is published on `monitoring.alerts` under a deterministic event id, stored
in `monitoring_alert_transitions` (the history `GET /v1/alerts` shows) and queued for the
webhook; then the evaluator's state is saved with the lease, so a restart resumes its
incidents instead of opening new ones.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.bus import EventBus
from llmops.events.catalog import CONTRACTS, Topic
from llmops.periodic import Periodic
from llmops.storage import MongoDocument, insert_once
from llmops.telemetry import get_logger
from llmops_monitoring.alerts import (
    AlertEvaluator,
    AlertRule,
    AlertRuleSet,
    AlertTransition,
    DriftRule,
    Observation,
    ScoreDropRule,
)
from llmops_monitoring.drift_reports import DriftAnalyst, DriftRequest, TimeRange
from llmops_monitoring.live_metrics import LiveMetrics
from llmops_monitoring.rollup_store import CellQuery, RollupStore
from llmops_monitoring.rollups import Aggregate, RollupCell, group_cells
from llmops_monitoring.webhook import WebhookNotifier

STATE = "monitoring_alert_state"
TRANSITIONS = "monitoring_alert_transitions"
_EVALUATOR = "evaluator"
_EVENTS = uuid.uuid5(uuid.NAMESPACE_URL, "llmops:monitoring:alert-events")
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)
_log = get_logger(__name__)


class AlertRunner:
    def __init__(
        self,
        rules: AlertRuleSet,
        *,
        db: AsyncDatabase[MongoDocument],
        rollups: RollupStore,
        bus: EventBus,
        live: LiveMetrics,
        webhook: WebhookNotifier | None,
        interval_s: float,
        drift: DriftAnalyst | None = None,
        tenant: str = "platform",
    ) -> None:
        self.rules = rules
        self._state = db[STATE]
        self._transitions = db[TRANSITIONS]
        self._rollups = rollups
        self._bus = bus
        self._live = live
        self._webhook = webhook
        self.interval_s = interval_s
        self._tenant = tenant
        self._me = uuid.uuid4().hex
        self._evaluator: AlertEvaluator | None = None
        self._drift = drift
        self._drift_due: dict[str, datetime] = {}
        self._rounds = Periodic("alert-rules", self._round, interval_s)

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db[TRANSITIONS].create_index([("time", DESCENDING)])

    async def start(self) -> None:
        await self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def _round(self) -> None:
        await self.evaluate(datetime.now(UTC))

    # ---- one round ----------------------------------------------------------------------

    async def evaluate(self, now: datetime) -> list[AlertTransition]:
        """One round, if this replica holds the lease; returns the transitions announced."""
        evaluator = await self._lease(now)
        if evaluator is None:
            return []
        transitions: list[AlertTransition] = []
        for rule in evaluator.rules.values():
            if isinstance(rule, DriftRule):
                drift = await self._observe_drift(rule, now)
                if drift is None:
                    continue  # not due: the rule keeps its state until the next report
                observations = [drift]
            else:
                observations = await self._observe(rule, now)
            seen = {tuple(sorted(o.scope.items())) for o in observations}
            for incident in evaluator.firing():
                if incident.rule_id == rule.id and incident.scope not in seen:
                    observations.append(Observation(rule.id, dict(incident.scope), None, now))
            transitions += evaluator.observe_many(observations)
        for transition in transitions:
            await self._announce(transition)
        await self._save(evaluator)
        severities = {rule.id: rule.severity.value for rule in evaluator.rules.values()}
        self._live.set_firing((i, severities[i.rule_id]) for i in evaluator.firing())
        return transitions

    async def _observe(self, rule: AlertRule, now: datetime) -> list[Observation]:
        start = rule.window.start_of(now)
        current = await self._cells(rule, start)
        baselines: dict[tuple[tuple[str, str], ...], float | None] = {}
        if isinstance(rule, ScoreDropRule) and rule.baseline is None:
            previous = await self._cells(rule, start - rule.window.length)
            baselines = {
                _scope(rule, cell): cell.aggregate.metric(rule.metric) for cell in previous
            }
        observations = []
        for cell in current:
            scope = _scope(rule, cell)
            observations.append(
                Observation(
                    rule_id=rule.id,
                    scope=dict(scope),
                    value=cell.aggregate.metric(rule.metric),
                    time=now,
                    samples=_samples(rule.metric, cell.aggregate),
                    baseline=baselines.get(scope),
                )
            )
        if isinstance(rule, ScoreDropRule) and rule.baseline is None:
            observations = [o for o in observations if o.baseline is not None]
        return observations

    async def _observe_drift(self, rule: DriftRule, now: datetime) -> Observation | None:
        """A drift report when the rule is due (reports are costly: embeddings, permutation
        tests); None between reports."""
        if self._drift is None or now < self._drift_due.get(rule.id, now):
            return None
        self._drift_due[rule.id] = now + rule.every
        current = TimeRange(now - rule.current, now)
        request = DriftRequest(
            tenant=rule.tenant,
            reference=TimeRange(current.since - rule.reference, current.since),
            current=current,
            prompt=rule.prompt,
            collection=rule.collection,
        )
        check = (await self._drift.report(request)).check(rule.metric)
        if check.report is None:  # insufficient data: no verdict, as no data elsewhere
            return Observation(rule.id, {}, None, now, detail=check.note)
        report = check.report
        self._live.set_drift(request.scope, rule.metric, report.statistic, report.drifted)
        return Observation.from_drift(rule.id, {}, report, now)

    async def _cells(self, rule: AlertRule, start: datetime) -> list[RollupCell]:
        query = CellQuery(rule.window, start, start + rule.window.length)
        return group_cells(await self._rollups.read(query), rule.group_by)

    async def _announce(self, transition: AlertTransition) -> None:
        transition_id = f"{transition.incident_id}:{transition.state.value}"
        event = await self._bus.emit(
            CONTRACTS[Topic.MONITORING_ALERTS],
            transition.to_event(),
            tenant=self._tenant,
            subject=transition.incident_id,
            event_id=str(uuid.uuid5(_EVENTS, transition_id)),
        )
        body = event.model_dump(mode="json")
        await insert_once(self._transitions, transition_id, {"time": event.time, "event": body})
        if self._webhook is not None:
            await self._webhook.enqueue(transition_id, body)
        _log.warning("alert " + transition.state.value, message=transition.message)

    # ---- lease and state ----------------------------------------------------------------

    async def _lease(self, now: datetime) -> AlertEvaluator | None:
        """The evaluator if this replica holds (or takes over) the lease, else None."""
        until = now + timedelta(seconds=3 * self.interval_s)
        await insert_once(self._state, _EVALUATOR, {"owner": None, "lease_until": _NEVER})
        taken = await self._state.find_one_and_update(
            {"_id": _EVALUATOR, "$or": [{"owner": self._me}, {"lease_until": {"$lt": now}}]},
            {"$set": {"owner": self._me, "lease_until": until}},
        )
        if taken is None:
            self._evaluator = None  # another replica evaluates; reload if it goes away
            return None
        if self._evaluator is None:
            saved = taken.get("state")
            self._evaluator = (
                AlertEvaluator(self.rules)
                if saved is None
                else AlertEvaluator.from_dict(self.rules, saved)
            )
        return self._evaluator

    async def _save(self, evaluator: AlertEvaluator) -> None:
        await self._state.update_one(
            {"_id": _EVALUATOR, "owner": self._me}, {"$set": {"state": evaluator.to_dict()}}
        )

    async def history(self, limit: int) -> list[dict[str, Any]]:
        """The latest transitions, newest first."""
        cursor = self._transitions.find({}).sort("time", DESCENDING).limit(limit)
        return [document["event"] async for document in cursor]

    def firing(self) -> list[dict[str, Any]]:
        """Incidents firing now, as this replica last evaluated them."""
        return [] if self._evaluator is None else [i.to_dict() for i in self._evaluator.firing()]


def _scope(rule: AlertRule, cell: RollupCell) -> tuple[tuple[str, str], ...]:
    dims = cell.key.dimensions.to_dict()
    return tuple(sorted((name, dims[name]) for name in rule.group_by))


def _samples(metric: str, aggregate: Aggregate) -> int:
    """What a rate or mean is computed over, for the rule's `min_samples`."""
    if metric.startswith("score:"):
        totals = aggregate.scores.get(metric.removeprefix("score:"))
        return 0 if totals is None else totals.count
    if "feedback" in metric:
        return aggregate.feedback_count
    return aggregate.requests


__all__ = ["AlertRunner"]
