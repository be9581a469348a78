"""A consumer SIGKILLed mid-batch loses no event, and its idempotent write is not duplicated.

Offsets are committed per polled batch (up to 4 x CONSUMER_CONCURRENCY records), so what
comes back after the kill is the stalled event and, when events run concurrently, the
rest of its uncommitted batch; nothing committed before it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from pymongo import AsyncMongoClient

from llmops.bus import EventBus
from llmops.events.catalog import CONTRACTS, FeedbackSubmitted, Topic
from llmops.settings import ServiceSettings
from llmops.telemetry import ServiceMetrics
from llmops.testing import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

WORKER = Path(__file__).with_name("crash_worker.py")
EVENTS = 60
STALL_AT = 25


@pytest.fixture
async def db(service_settings: Callable[..., ServiceSettings]) -> AsyncIterator[Any]:
    settings = service_settings()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value()
    )
    yield client[settings.mongodb_database]
    await client.close()


def _start_worker(settings: ServiceSettings, **extra_env: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "MONGODB_URL": settings.mongodb_url.get_secret_value(),
        "MONGODB_DATABASE": settings.mongodb_database,
        **extra_env,
    }
    return subprocess.Popen([sys.executable, str(WORKER)], env=env)


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_sigkill_mid_batch_loses_nothing_and_duplicates_no_write(
    service_settings: Callable[..., ServiceSettings], db: Any, concurrency: int
) -> None:
    settings = service_settings()
    producer = EventBus(settings, tracer_provider=TracerProvider(), metrics=ServiceMetrics("p"))
    await producer.start()
    contract = CONTRACTS[Topic.FEEDBACK_EVENTS]
    try:
        for n in range(EVENTS):
            payload = FeedbackSubmitted(completion_id=f"cmpl-{n}", user_id="u-1")
            await producer.emit(contract, payload, tenant="acme", subject=f"item-{n}")
    finally:
        await producer.stop()

    worker = _start_worker(
        settings, STALL_AFTER_WRITE=f"item-{STALL_AT}", CONSUMER_CONCURRENCY=str(concurrency)
    )
    try:
        await wait_until(
            lambda: db.markers.find_one({"_id": "stalled"}), timeout=90, what="the worker to stall"
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        worker.kill()

    # Killed after writing item-25 but before committing its offset.
    written_before_kill = {doc["subject"] for doc in await db.feedback.find().to_list()}
    assert f"item-{STALL_AT}" in written_before_kill
    if concurrency == 1:  # one at a time: all before the stalled event, nothing after it
        assert written_before_kill == {f"item-{n}" for n in range(STALL_AT + 1)}

    restarted = _start_worker(settings, CONSUMER_CONCURRENCY=str(concurrency))
    try:
        await wait_until(
            lambda: _count_is(db.feedback, EVENTS), timeout=120, what="every event to be written"
        )
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=30) == 0

    subjects = sorted(doc["subject"] for doc in await db.feedback.find().to_list())
    assert subjects == sorted(f"item-{n}" for n in range(EVENTS))
    deliveries = {doc["_id"]: doc["count"] for doc in await db.deliveries.find().to_list()}
    redelivered = [event_id for event_id, count in deliveries.items() if count > 1]
    assert len(deliveries) == EVENTS
    stalled_doc = await db.feedback.find_one({"subject": f"item-{STALL_AT}"})
    assert stalled_doc is not None
    assert stalled_doc["_id"] in redelivered
    # At most the stalled event's poll came back, not everything after the last commit.
    assert len(redelivered) <= 4 * concurrency


async def _count_is(collection: Any, expected: int) -> bool:
    return int(await collection.count_documents({})) == expected
