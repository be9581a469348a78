"""Prometheus metrics: one registry per service instance, exposed on /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
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
        self.service = service

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def http_middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Count and time requests by route template (not raw path, to bound cardinality)."""
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            # Routing leaves the matched route in the scope (included routers too).
            matched = request.scope.get("route")
            route = str(getattr(matched, "path", "unmatched"))
            self.http_latency.labels(self.service, request.method, route).observe(
                time.perf_counter() - started
            )
            self.http_requests.labels(self.service, request.method, route, str(status)).inc()
