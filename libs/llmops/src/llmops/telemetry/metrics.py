"""Prometheus metrics: one registry per service instance, exposed on /metrics."""

from __future__ import annotations

from fastapi import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)


class ServiceMetrics:
    """The platform-level metrics every service exposes, on its own registry."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.http_requests = Counter(
            "llmops_http_requests_total",
            "HTTP requests served.",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "llmops_http_request_duration_seconds",
            "HTTP request latency.",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self.events_consumed = Counter(
            "llmops_events_consumed_total",
            "Events handled successfully.",
            ["service", "topic"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "llmops_events_published_total",
            "Events handed to Kafka.",
            ["service", "topic"],
            registry=self.registry,
        )
        self.handler_retries = Counter(
            "llmops_event_handler_retries_total",
            "Handler attempts that failed and were retried.",
            ["service", "topic"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "llmops_events_dead_lettered_total",
            "Events sent to a dead-letter topic.",
            ["service", "topic", "reason"],
            registry=self.registry,
        )
        # The outbox (llmops.bus.outbox): events published from request paths.
        self.events_delivered = Counter(
            "llmops_events_delivered_total",
            "Outbox events Kafka acknowledged, by path: direct, spool (sent after an outage) "
            "or found (already on the topic after an interrupted send, not sent again).",
            ["service", "topic", "via"],
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "llmops_events_dropped_total",
            "Outbox events given up, by reason: spool_full, queue_full, invalid, rejected, "
            "corrupt, spool_error, error.",
            ["service", "reason"],
            registry=self.registry,
        )
        self.events_queued = Gauge(
            "llmops_events_queued",
            "Events in the outbox's memory queue when it last took a batch: near zero while "
            "Kafka keeps up; growing means events arrive faster than they are sent.",
            ["service"],
            registry=self.registry,
        )
        self.events_spooled = Gauge(
            "llmops_events_spooled",
            "Events waiting in the on-disk spool for Kafka to be reachable.",
            ["service"],
            registry=self.registry,
        )
        self.event_spool_bytes = Gauge(
            "llmops_event_spool_bytes",
            "Bytes the on-disk event spool occupies (EVENT_SPOOL_MAX_BYTES bounds it).",
            ["service"],
            registry=self.registry,
        )
        self.service = service

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
