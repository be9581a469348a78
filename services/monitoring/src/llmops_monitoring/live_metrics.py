"""Prometheus metrics of the LLM traffic, computed from the rollups at scrape time.

Counters are totals since this process started, over the partitions it consumes (each
replica exports its share; sum them in PromQL). Latency and time-to-first-token quantiles
are gauges over the trailing five minutes of this process's minute cells; the query API
merges the stored sketches of every replica for exact fleet-wide quantiles.
Nothing here runs per event but a dictionary increment: the rest happens per flush and
per scrape. The names are what infra/compose/grafana dashboards query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from llmops_monitoring.alerts import Incident
from llmops_monitoring.rollups import (
    DIMENSION_NAMES,
    LATENCY_QUANTILES,
    Aggregate,
    Dimensions,
    RollupCell,
    ScoreTotals,
)

TRAILING = timedelta(minutes=5)
_LABELS = list(DIMENSION_NAMES)


class LiveMetrics(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._events: dict[str, int] = {}
        self._totals: dict[Dimensions, Aggregate] = {}
        self._recent: dict[tuple[datetime, Dimensions], Aggregate] = {}
        self._firing: list[tuple[Incident, str]] = []
        self._drift: dict[tuple[str, str], tuple[float, bool]] = {}
        registry.register(self)

    # ---- feeding ------------------------------------------------------------------------

    def consumed(self, topic: str, count: int = 1) -> None:
        self._events[topic] = self._events.get(topic, 0) + count

    def flushed(self, minute_cells: Iterable[RollupCell]) -> None:
        """Count flushed minute cells (called once per flush, after it is stored)."""
        horizon = datetime.now(UTC) - TRAILING - timedelta(minutes=1)
        for cell in minute_cells:
            dims = cell.key.dimensions
            total = self._totals.get(dims)
            if total is None:
                total = self._totals[dims] = Aggregate()
            total.merge(cell.aggregate)
            if cell.key.start >= horizon:
                recent = self._recent.get((cell.key.start, dims))
                if recent is None:
                    self._recent[(cell.key.start, dims)] = cell.aggregate.copy()
                else:
                    recent.merge(cell.aggregate)
        for key in [key for key in self._recent if key[0] < horizon]:
            del self._recent[key]

    def set_firing(self, incidents: Iterable[tuple[Incident, str]]) -> None:
        """Incidents firing now, with their rule's severity."""
        self._firing = list(incidents)

    def set_drift(self, scope: str, check: str, statistic: float, drifted: bool) -> None:
        self._drift[(scope, check)] = (statistic, drifted)

    # ---- scraping -----------------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return []  # families are dynamic; collect() at registration would be wasted work

    def collect(self) -> Iterator[Metric]:
        yield from self._traffic()
        yield from self._quantiles()
        yield from self._quality()
        events = CounterMetricFamily(
            "llmops_monitoring_events", "Events the monitoring service consumed.", labels=["topic"]
        )
        for topic, count in sorted(self._events.items()):
            events.add_metric([topic], count)
        yield events
        firing = GaugeMetricFamily(
            "llmops_alerts_firing", "Alert incidents firing now.", labels=["rule", "severity"]
        )
        counts: dict[tuple[str, str], int] = {}
        for incident, severity in self._firing:
            key = (incident.rule_id, severity)
            counts[key] = counts.get(key, 0) + 1
        for (rule, severity), count in sorted(counts.items()):
            firing.add_metric([rule, severity], count)
        yield firing
        statistic = GaugeMetricFamily(
            "llmops_drift_statistic", "Last drift statistic.", labels=["scope", "check"]
        )
        detected = GaugeMetricFamily(
            "llmops_drift_detected",
            "1 when the last drift check flagged drift.",
            labels=["scope", "check"],
        )
        for (scope, check), (value, drifted) in sorted(self._drift.items()):
            statistic.add_metric([scope, check], value)
            detected.add_metric([scope, check], float(drifted))
        yield statistic
        yield detected

    def _traffic(self) -> Iterator[Metric]:
        def counter(name: str, doc: str, extra: list[str] | None = None) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=_LABELS + (extra or []))

        requests = counter("llmops_llm_requests", "Chat completions.")
        errors = counter("llmops_llm_errors", "Chat completions that failed.")
        tokens = counter("llmops_llm_tokens", "Tokens by kind.", ["kind"])
        cost = counter("llmops_llm_cost_usd", "Estimated cost in US dollars.")
        cache = counter("llmops_llm_cache_hits", "Answers served from a cache.")
        refusals = counter("llmops_llm_refusals", "Answers that refuse.")
        feedback = counter("llmops_feedback", "Feedback scores recorded.")
        negative = counter("llmops_feedback_negative", "Feedback scored below 0.5.")
        feedback_sum = UnknownMetricFamily(
            "llmops_feedback_score_sum", "Sum of feedback scores in [0, 1].", labels=_LABELS
        )
        documents = CounterMetricFamily(
            "llmops_ingest_documents", "Documents ingested.", labels=["tenant", "outcome"]
        )
        chunks = CounterMetricFamily("llmops_ingest_chunks", "Chunks indexed.", labels=["tenant"])
        ingest: dict[str, Aggregate] = {}
        for dims, total in sorted(
            self._totals.items(), key=lambda item: tuple(item[0].to_dict().values())
        ):
            labels = list(dims.to_dict().values())
            if total.requests:
                requests.add_metric(labels, total.requests)
                errors.add_metric(labels, total.errors)
                tokens.add_metric([*labels, "prompt"], total.prompt_tokens)
                tokens.add_metric([*labels, "completion"], total.completion_tokens)
                cost.add_metric(labels, total.cost_usd)
                cache.add_metric(labels, total.cache_exact + total.cache_semantic)
                refusals.add_metric(labels, total.refusals)
            if total.feedback_count:
                feedback.add_metric(labels, total.feedback_count)
                negative.add_metric(labels, total.feedback_negative)
                feedback_sum.add_metric(labels, total.feedback_score_sum)
            if total.ingest_documents or total.ingest_failed or total.ingest_chunks:
                ingest.setdefault(dims.tenant, Aggregate()).merge(total)
        for tenant, total in sorted(ingest.items()):
            documents.add_metric([tenant, "done"], total.ingest_documents)
            documents.add_metric([tenant, "failed"], total.ingest_failed)
            chunks.add_metric([tenant], total.ingest_chunks)
        yield from (requests, errors, tokens, cost, cache, refusals)
        yield from (feedback, negative, feedback_sum, documents, chunks)

    def _quantiles(self) -> Iterator[Metric]:
        horizon = datetime.now(UTC) - TRAILING
        merged: dict[Dimensions, Aggregate] = {}
        for (start, dims), aggregate in self._recent.items():
            if start >= horizon - timedelta(minutes=1):
                merged.setdefault(dims, Aggregate()).merge(aggregate)
        labels = [*_LABELS, "quantile"]
        latency = GaugeMetricFamily(
            "llmops_llm_latency_ms", "Latency quantiles, trailing 5 minutes.", labels=labels
        )
        ttft = GaugeMetricFamily(
            "llmops_llm_ttft_ms",
            "Time to first token quantiles, trailing 5 minutes.",
            labels=labels,
        )
        for dims, aggregate in merged.items():
            values = list(dims.to_dict().values())
            for q in LATENCY_QUANTILES:
                for family, sketch in ((latency, aggregate.latency_ms), (ttft, aggregate.ttft_ms)):
                    value = sketch.quantile(q)
                    if value is not None:
                        family.add_metric([*values, f"{q:g}"], value)
        yield latency
        yield ttft

    def _quality(self) -> Iterator[Metric]:
        scores = SummaryMetricFamily(
            "llmops_eval_score",
            "Online evaluation scores (count and sum per metric).",
            labels=["tenant", "model", "prompt", "metric"],
        )
        by_metric: dict[tuple[str, str, str, str], ScoreTotals] = {}
        for dims, total in self._totals.items():
            for metric, totals in total.scores.items():
                key = (dims.tenant, dims.model, dims.prompt, metric)
                entry = by_metric.setdefault(key, ScoreTotals())
                entry.count += totals.count
                entry.total += totals.total
        for key, entry in sorted(by_metric.items()):
            scores.add_metric(list(key), count_value=entry.count, sum_value=entry.total)
        yield scores


__all__ = ["TRAILING", "LiveMetrics"]
