"""Every HTTP request: one SERVER span named after its route in the caller's trace, a
request id and traceparent on the response, and metrics by route template."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from llmops.telemetry.http_server import HttpServerTelemetry
from llmops.telemetry.metrics import ServiceMetrics

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _app() -> tuple[FastAPI, InMemorySpanExporter, list[trace.SpanContext]]:
    app, exporter, seen, _ = _app_with_metrics()
    return app, exporter, seen


def _app_with_metrics() -> tuple[
    FastAPI, InMemorySpanExporter, list[trace.SpanContext], ServiceMetrics
]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI()
    seen_in_handler: list[trace.SpanContext] = []

    @app.get("/v1/items/{item}")
    async def item(item: str) -> dict[str, str]:
        seen_in_handler.append(trace.get_current_span().get_span_context())
        return {"item": item}

    @app.get("/v1/broken")
    async def broken() -> None:
        msg = "the handler failed"
        raise RuntimeError(msg)

    @app.get("/v1/busy")
    async def busy() -> JSONResponse:
        return JSONResponse({"error": "overloaded"}, status_code=503)

    @app.get("/v1/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(3):
                await asyncio.sleep(0.01)
                yield f"{n}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    metrics = ServiceMetrics("gateway")
    app.add_middleware(
        HttpServerTelemetry,
        tracer_provider=provider,
        metrics=metrics,
        untraced_paths=("/healthz",),
    )
    return app, exporter, seen_in_handler, metrics


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


def _only(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


async def _one_request(
    path: str, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, ReadableSpan]:
    """GET `path` on a fresh app: the response and the one span it made."""
    app, exporter, _ = _app()
    async with _client(app) as client:
        response = await client.get(path, headers=headers)
    return response, _only(exporter)


async def test_a_request_is_a_server_span_named_after_its_route_with_http_attributes() -> None:
    app, exporter, seen_in_handler = _app()
    async with _client(app) as client:
        response = await client.get("/v1/items/7?expand=1", headers={"user-agent": "support-bot"})

    assert response.status_code == 200
    span = _only(exporter)
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /v1/items/{item}"
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/v1/items/7",
        "url.query": "expand=1",
        "network.protocol.version": "1.1",
        "server.address": "gateway",
        "client.address": "127.0.0.1",
        "client.port": 123,
        "user_agent.original": "support-bot",
        "http.route": "/v1/items/{item}",
        "http.response.status_code": 200,
    }
    # The handler runs inside the span, so what it traces is a child of the request.
    assert seen_in_handler[0].span_id == span.context.span_id


async def test_the_span_continues_the_callers_trace_from_traceparent() -> None:
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    _, span = await _one_request("/v1/items/7", headers={"traceparent": traceparent})

    assert format(span.context.trace_id, "032x") == CALLER_TRACE
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == CALLER_SPAN
    assert span.parent.is_remote


async def test_an_unmatched_path_is_named_by_its_method_alone() -> None:
    response, span = await _one_request("/v1/nowhere")

    assert response.status_code == 404
    assert span.name == "GET"
    assert "http.route" not in (span.attributes or {})
    assert (span.attributes or {})["http.response.status_code"] == 404
    assert span.status.status_code is StatusCode.UNSET


async def test_an_escaping_exception_makes_the_span_an_error_with_the_exception() -> None:
    response, span = await _one_request("/v1/broken")

    assert response.status_code == 500
    assert span.name == "GET /v1/broken"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError: the handler failed"
    (event,) = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.message"] == "the handler failed"


async def test_a_5xx_answer_makes_the_span_an_error() -> None:
    response, span = await _one_request("/v1/busy")

    assert response.status_code == 503
    assert (span.attributes or {})["http.response.status_code"] == 503
    assert span.status.status_code is StatusCode.ERROR


async def test_a_streamed_response_is_timed_to_its_last_chunk() -> None:
    response, span = await _one_request("/v1/stream")

    assert response.text == "0\n1\n2\n"
    assert span.end_time is not None
    assert span.start_time is not None
    assert span.end_time - span.start_time >= 30_000_000  # three 10 ms chunks, in ns


async def test_untraced_paths_make_no_span_but_keep_their_id_and_metrics() -> None:
    app, exporter, _, metrics = _app_with_metrics()
    async with _client(app) as client:
        response = await client.get("/healthz")

    assert response.status_code == 200
    assert exporter.get_finished_spans() == ()
    assert "traceparent" not in response.headers
    assert len(response.headers["x-request-id"]) == 32
    assert _requests(metrics, "GET", "/healthz", "200") == 1


async def test_the_response_names_its_request_and_its_trace() -> None:
    app, exporter, _ = _app()
    async with _client(app) as client:
        kept = await client.get("/v1/items/1", headers={"x-request-id": "support-bot:42"})
        made = await client.get("/v1/items/2", headers={"x-request-id": "not sane!"})

    assert kept.headers["x-request-id"] == "support-bot:42"
    assert made.headers["x-request-id"] != "not sane!"
    assert len(made.headers["x-request-id"]) == 32
    first, second = exporter.get_finished_spans()
    for response, span in ((kept, first), (made, second)):
        _, trace_id, span_id, _ = response.headers["traceparent"].split("-")
        assert trace_id == format(span.context.trace_id, "032x")
        assert span_id == format(span.context.span_id, "016x")


async def test_requests_are_counted_and_timed_by_route_template() -> None:
    app, _, _, metrics = _app_with_metrics()
    async with _client(app) as client:
        for item in ("1", "2", "3"):
            await client.get(f"/v1/items/{item}")
        await client.get("/v1/busy")
        await client.get("/v1/nowhere")

    assert _requests(metrics, "GET", "/v1/items/{item}", "200") == 3
    assert _requests(metrics, "GET", "/v1/busy", "503") == 1
    assert _requests(metrics, "GET", "unmatched", "404") == 1
    timed = metrics.registry.get_sample_value(
        "llmops_http_request_duration_seconds_count",
        {"service": "gateway", "method": "GET", "route": "/v1/items/{item}"},
    )
    assert timed == 3


def _requests(metrics: ServiceMetrics, method: str, route: str, status: str) -> float | None:
    return metrics.registry.get_sample_value(
        "llmops_http_requests_total",
        {"service": "gateway", "method": method, "route": route, "status": status},
    )
