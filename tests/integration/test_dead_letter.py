"""What a consumer cannot handle lands in `<topic>.dlq` with its reason; the consumer goes on."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace import TracerProvider

from llmops.bus import EventBus, PermanentError
from llmops.events.catalog import CONTRACTS, FeedbackSubmitted, Thumbs, Topic
from llmops.events.envelope import Envelope, new_event
from llmops.settings import ServiceSettings
from llmops.telemetry import ServiceMetrics
from llmops.testing import headers_of, read_topic, wait_until

pytestmark = pytest.mark.kafka

FEEDBACK = CONTRACTS[Topic.FEEDBACK_EVENTS]


def _feedback(completion_id: str) -> Envelope[FeedbackSubmitted]:
    payload = FeedbackSubmitted(completion_id=completion_id, user_id="u-1", thumbs=Thumbs.UP)
    return new_event(FEEDBACK, payload, source="test", tenant="acme", subject=completion_id)


def _bus(settings: ServiceSettings) -> EventBus:
    return EventBus(settings, tracer_provider=TracerProvider(), metrics=ServiceMetrics("test"))


async def _send_raw(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(
                topic, value, key=b"poison", headers=[("content-type", b"application/json")]
            )
    finally:
        await producer.stop()


async def test_malformed_messages_are_dead_lettered_and_the_consumer_goes_on(
    service_settings: Callable[..., ServiceSettings],
) -> None:
    settings = service_settings()
    bus = _bus(settings)
    handled: list[str] = []

    async def on_feedback(event: Envelope[Any]) -> None:
        handled.append(event.data.completion_id)

    bus.subscribe(FEEDBACK, on_feedback)
    topic = bus.topic_name(FEEDBACK.topic)
    not_json = b"{this is not json"
    missing_field = json.dumps(
        {**json.loads(_feedback("x").model_dump_json()), "data": {"user_id": "u-1"}}
    ).encode()
    await _send_raw(settings.kafka_bootstrap_servers, topic, not_json, missing_field)
    await bus.start()
    try:
        await bus.publish(_feedback("good-1"))
        await wait_until(lambda: handled == ["good-1"], what="the valid event")
    finally:
        await bus.stop()

    dead = await read_topic(settings.kafka_bootstrap_servers, bus.topic_name(FEEDBACK.dlq), count=2)
    assert [record.value for record in dead] == [not_json, missing_field]
    first, second = (headers_of(record) for record in dead)
    assert first["dlq-reason"] == second["dlq-reason"] == "invalid"
    assert first["dlq-error-class"] == "EventDecodeError"
    assert "not valid JSON" in first["dlq-error-message"]
    assert "data.completion_id" in second["dlq-error-message"]
    assert (first["dlq-original-topic"], first["dlq-original-offset"]) == (topic, "0")
    assert second["dlq-original-offset"] == "1"
    assert first["dlq-consumer-group"] == settings.consumer_group

    # Offsets of dead-lettered messages were committed: a restart sees only new events.
    restarted = _bus(settings)
    seen_after_restart: list[str] = []

    async def after_restart(event: Envelope[Any]) -> None:
        seen_after_restart.append(event.data.completion_id)

    restarted.subscribe(FEEDBACK, after_restart)
    await restarted.start()
    try:
        await restarted.publish(_feedback("good-2"))
        await wait_until(lambda: seen_after_restart, what="the event after restart")
    finally:
        await restarted.stop()
    assert seen_after_restart == ["good-2"]


async def test_failing_handlers_are_retried_then_dead_lettered(
    service_settings: Callable[..., ServiceSettings],
) -> None:
    settings = service_settings(CONSUMER_MAX_RETRIES="2")
    bus = _bus(settings)
    attempts: dict[str, int] = {}

    async def flaky(event: Envelope[Any]) -> None:
        completion_id = event.data.completion_id
        attempts[completion_id] = attempts.get(completion_id, 0) + 1
        if completion_id == "always-fails":
            raise RuntimeError("downstream is broken")
        if completion_id == "fails-once" and attempts[completion_id] == 1:
            raise ConnectionError("blip")
        if completion_id == "rejected":
            raise PermanentError("tenant does not exist")

    bus.subscribe(FEEDBACK, flaky)
    await bus.start()
    try:
        for completion_id in ("always-fails", "fails-once", "rejected", "last"):
            await bus.publish(_feedback(completion_id))
        await wait_until(lambda: "last" in attempts, what="the last event")
    finally:
        await bus.stop()

    assert attempts == {"always-fails": 3, "fails-once": 2, "rejected": 1, "last": 1}
    dead = await read_topic(settings.kafka_bootstrap_servers, bus.topic_name(FEEDBACK.dlq), count=2)
    by_key = {record.key: headers_of(record) for record in dead}
    failed, rejected = by_key[b"always-fails"], by_key[b"rejected"]
    assert (failed["dlq-reason"], failed["dlq-attempts"]) == ("failed", "3")
    assert failed["dlq-error-class"] == "RuntimeError"
    assert failed["dlq-error-message"] == "downstream is broken"
    assert (rejected["dlq-reason"], rejected["dlq-attempts"]) == ("rejected", "1")
    assert "traceparent" in failed, "the original trace context travels with the dead letter"
    retries = bus.metrics.registry.get_sample_value(
        "llmops_event_handler_retries_total", {"service": "llmops", "topic": FEEDBACK.topic}
    )
    assert retries == 3  # two for always-fails, one for fails-once
