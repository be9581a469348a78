"""A consumer handles events of different keys at once and each key's events in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from llmops.bus import EventBus
from llmops.events.catalog import CONTRACTS, FeedbackSubmitted, Topic
from llmops.events.envelope import Envelope
from llmops.settings import ServiceSettings
from llmops.telemetry import ServiceMetrics
from llmops.testing import wait_until

pytestmark = pytest.mark.kafka

FEEDBACK = CONTRACTS[Topic.FEEDBACK_EVENTS]
SUBJECTS = 12
PER_SUBJECT = 5


def _bus(settings: ServiceSettings) -> EventBus:
    return EventBus(settings, tracer_provider=TracerProvider(), metrics=ServiceMetrics("test"))


async def _publish_all(settings: ServiceSettings) -> None:
    producer = _bus(settings)
    await producer.start()
    try:
        for seq in range(PER_SUBJECT):
            for subject in range(SUBJECTS):
                payload = FeedbackSubmitted(completion_id=f"s{subject}-{seq}", user_id="u-1")
                await producer.emit(FEEDBACK, payload, tenant="acme", subject=f"s{subject}")
    finally:
        await producer.stop()


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_keys_run_concurrently_up_to_the_limit_and_each_key_in_order(
    service_settings: Callable[..., ServiceSettings], concurrency: int
) -> None:
    settings = service_settings(CONSUMER_CONCURRENCY=str(concurrency))
    await _publish_all(settings)
    consumer = _bus(settings)
    running: set[str] = set()
    most_at_once = 0
    order: dict[str, list[int]] = {}

    async def on_feedback(event: Envelope[Any]) -> None:
        nonlocal most_at_once
        subject, seq = event.data.completion_id.split("-")
        assert subject not in running, f"two events of {subject} ran at once"
        running.add(subject)
        most_at_once = max(most_at_once, len(running))
        await asyncio.sleep(0.02)  # long enough for the others of the batch to start
        order.setdefault(subject, []).append(int(seq))
        running.discard(subject)

    consumer.subscribe(FEEDBACK, on_feedback)
    await consumer.start()
    try:
        await wait_until(
            lambda: sum(map(len, order.values())) == SUBJECTS * PER_SUBJECT,
            timeout=60,
            what="every event handled",
        )
    finally:
        await consumer.stop()

    assert order == {f"s{subject}": list(range(PER_SUBJECT)) for subject in range(SUBJECTS)}
    if concurrency == 1:
        assert most_at_once == 1
    else:
        assert 1 < most_at_once <= concurrency
