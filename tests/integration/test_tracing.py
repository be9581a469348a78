"""A trace started by an HTTP request continues in the consumer of the event it published."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from llmops.bus import EventBus
from llmops.events.catalog import CONTRACTS, FeedbackSubmitted, Thumbs, Topic
from llmops.events.envelope import Envelope
from llmops.service import ServiceContext, create_service_app, service_context
from llmops.settings import ServiceSettings
from llmops.telemetry import ServiceMetrics
from llmops.testing import headers_of, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

FEEDBACK = CONTRACTS[Topic.FEEDBACK_EVENTS]


def _recording_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _feedback_route() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/feedback")
    async def submit(context: ServiceContext = Depends(service_context)) -> dict[str, str]:  # noqa: B008 - FastAPI's dependency idiom
        payload = FeedbackSubmitted(completion_id="cmpl-1", user_id="u-1", thumbs=Thumbs.DOWN)
        event = await context.bus.emit(FEEDBACK, payload, tenant="acme", subject="cmpl-1")
        return {"event_id": event.id}

    return router


async def test_consumer_span_continues_the_http_trace(
    service_settings: Callable[..., ServiceSettings],
) -> None:
    producer_tracing, producer_spans = _recording_provider()
    consumer_tracing, consumer_spans = _recording_provider()
    app = create_service_app(
        service_settings(),
        description="publishes on an HTTP call",
        routers=[_feedback_route()],
        tracer_provider=producer_tracing,
    )
    consumer = EventBus(
        service_settings(), tracer_provider=consumer_tracing, metrics=ServiceMetrics("consumer")
    )
    seen_in_handler: list[trace.SpanContext] = []
    handled = asyncio.Event()

    async def on_feedback(event: Envelope[Any]) -> None:
        seen_in_handler.append(trace.get_current_span().get_span_context())
        handled.set()

    consumer.subscribe(FEEDBACK, on_feedback)
    await consumer.start()
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                response = await client.post("/v1/feedback")
            assert response.status_code == 200
            await asyncio.wait_for(handled.wait(), timeout=60)
    finally:
        await consumer.stop()

    server = _only(producer_spans.get_finished_spans(), SpanKind.SERVER)
    published = [s for s in producer_spans.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    processed = _only(consumer_spans.get_finished_spans(), SpanKind.CONSUMER)
    trace_id = server.context.trace_id

    assert published, "publishing made no producer span"
    assert {span.context.trace_id for span in published} == {trace_id}
    assert processed.context.trace_id == trace_id
    assert processed.parent is not None
    assert processed.parent.span_id in {span.context.span_id for span in published}
    assert seen_in_handler[0].trace_id == trace_id

    (record,) = await read_topic(
        consumer.settings.kafka_bootstrap_servers, consumer.topic_name(FEEDBACK.topic), count=1
    )
    traceparent = headers_of(record)["traceparent"]
    assert traceparent.split("-")[1] == format(trace_id, "032x")


def _only(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> ReadableSpan:
    matching = [span for span in spans if span.kind is kind]
    assert len(matching) == 1, [(span.name, span.kind) for span in spans]
    return matching[0]
