"""The inference batch worker: `inference.requests` from Kafka answered on `inference.results`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from llmops.events.catalog import (
    CONTRACTS,
    CallStatus,
    ChatMessage,
    ChatRole,
    FinishReason,
    InferenceRequested,
    SamplingParams,
    Topic,
)
from llmops.events.codec import EventCodec
from llmops.testing import SettingsFactory, headers_of, read_topic, serving
from llmops_inference.app import create_app
from llmops_inference.batch_worker import result_event_id
from llmops_inference.settings import InferenceSettings
from llmops_inference.toy_model import build_toy_chat_model

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

REQUESTS = CONTRACTS[Topic.INFERENCE_REQUESTS]
RESULTS = CONTRACTS[Topic.INFERENCE_RESULTS]


def ask(request_id: str, model: str, content: str, **sampling: object) -> InferenceRequested:
    return InferenceRequested(
        request_id=request_id,
        model=model,
        messages=[ChatMessage(role=ChatRole.USER, content=content)],
        sampling=SamplingParams.model_validate({"temperature": 0.0, "max_tokens": 6, **sampling}),
        run_id="run-1",
        item_id=request_id,
        metadata={"dataset": "faq"},
    )


async def test_requests_are_answered_once_each_with_errors_as_results(
    service_settings: SettingsFactory, tmp_path: Path
) -> None:
    model_dir = build_toy_chat_model(tmp_path / "model")
    settings = service_settings(
        InferenceSettings,
        models=[{"name": "toy", "engine": "transformers", "source": str(model_dir)}],
    )
    app = create_app(settings)
    requests = [
        ask("item-1", "toy", "where is my order"),
        ask("item-2", "no-such-model", "hello"),
        ask("item-3", "toy", "hello " * 600),
        ask("item-1", "toy", "where is my order"),  # sent again: same answer, same event id
    ]
    async with serving(app) as url:
        bus = app.state.context.bus
        for request in requests:
            await bus.emit(REQUESTS, request, tenant="acme", subject=request.request_id)
        records = await read_topic(
            settings.kafka_bootstrap_servers, bus.topic_name(RESULTS.topic), count=4, timeout=60
        )
        async with httpx.AsyncClient(base_url=url) as http:
            body = {
                "model": "toy",
                "messages": [{"role": "user", "content": "where is my order"}],
                "temperature": 0,
                "max_tokens": 6,
            }
            same_over_http = (await http.post("/v1/chat/completions", json=body)).json()

    codec = EventCodec(RESULTS, settings.event_wire_format)
    # Requests with different ids are handled concurrently (ADR 11): results come in any
    # order across ids, and in order for one id.
    events = sorted(
        (codec.decode(record.value, headers_of(record)) for record in records),
        key=lambda e: e.data.request_id,
    )
    assert [e.data.request_id for e in events] == ["item-1", "item-1", "item-2", "item-3"]
    assert all(e.tenant == "acme" and e.subject == e.data.request_id for e in events)
    assert [e.id for e in events] == [result_event_id("acme", f"item-{n}") for n in (1, 1, 2, 3)]

    answered, again, unknown, too_long = (e.data for e in events)
    assert answered.status is CallStatus.OK
    assert answered.output == same_over_http["choices"][0]["message"]["content"]
    assert answered.output == again.output
    assert answered.finish_reason in {FinishReason.STOP, FinishReason.LENGTH}
    assert answered.usage.total_tokens == same_over_http["usage"]["total_tokens"]
    assert (answered.run_id, answered.item_id, answered.metadata) == (
        "run-1",
        "item-1",
        {"dataset": "faq"},
    )
    assert answered.latency_ms > 0

    assert unknown.status is CallStatus.ERROR
    assert unknown.error is not None
    assert unknown.error.code == "model_not_found"
    assert unknown.output is None
    assert unknown.usage.total_tokens == 0
    assert too_long.error is not None
    assert too_long.error.code == "context_length_exceeded"
