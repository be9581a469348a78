"""An outgoing call made with the traced client continues the caller's trace downstream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI, Request, Response
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from llmops.telemetry import traced_http_client
from llmops.telemetry.http_server import HttpServerTelemetry
from llmops.telemetry.metrics import ServiceMetrics


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def test_downstream_server_span_is_a_child_of_the_client_span() -> None:
    caller_tracing, caller_spans = _provider()
    callee_tracing, callee_spans = _provider()
    downstream = FastAPI()
    received: dict[str, str] = {}

    @downstream.get("/v1/search")
    async def search() -> dict[str, str]:
        return {"ok": "yes"}

    @downstream.middleware("http")
    async def capture(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        received["traceparent"] = request.headers.get("traceparent", "")
        return await call_next(request)

    downstream.add_middleware(
        HttpServerTelemetry, tracer_provider=callee_tracing, metrics=ServiceMetrics("indexer")
    )
    client = traced_http_client(
        caller_tracing, transport=httpx.ASGITransport(app=downstream), base_url="http://indexer"
    )
    tracer = caller_tracing.get_tracer("gateway")
    async with client:
        with tracer.start_as_current_span("chat completion") as root:
            response = await client.get("/v1/search")

    assert response.status_code == 200
    client_span = next(s for s in caller_spans.get_finished_spans() if s.kind is SpanKind.CLIENT)
    handled = next(s for s in callee_spans.get_finished_spans() if s.name == "GET /v1/search")
    trace_id = root.get_span_context().trace_id
    assert client_span.context.trace_id == trace_id
    assert client_span.parent is not None
    assert client_span.parent.span_id == root.get_span_context().span_id
    # What crosses the wire: the downstream request names the client span as its parent.
    _, header_trace_id, header_parent_id, _ = received["traceparent"].split("-")
    assert header_trace_id == format(trace_id, "032x")
    assert header_parent_id == format(client_span.context.span_id, "016x")
    assert handled.context.trace_id == trace_id
