"""`llmops tail` against the real broker: in process through `main`, and as a process for Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from llmops.cli.main import main
from llmops.events.catalog import (
    CONTRACTS,
    CacheResult,
    CallStatus,
    CompletionRecorded,
    RedactionPolicy,
    TokenUsage,
    Topic,
)
from llmops.events.codec import EventCodec
from llmops.events.envelope import Envelope, new_event
from llmops.settings import ServiceSettings, WireFormat

pytestmark = pytest.mark.kafka

COMPLETIONS = CONTRACTS[Topic.LLM_COMPLETIONS]
CODEC = EventCodec(COMPLETIONS, WireFormat.JSON)


def completion(
    n: int, *, model: str = "gpt-4o", latency_ms: float = 100.0, tenant: str = "acme"
) -> Envelope[CompletionRecorded]:
    payload = CompletionRecorded(
        completion_id=f"cmpl-{n}",
        request_id=f"req-{n}",
        api_key_id="key-1",
        requested_model="default",
        served_model=model,
        redaction=RedactionPolicy.NONE,
        usage=TokenUsage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        latency_ms=latency_ms,
        cost_usd=0.001,
        cache=CacheResult.NONE,
        stream=False,
        status=CallStatus.OK,
        tags=["vip"] if n % 2 else [],
    )
    return new_event(COMPLETIONS, payload, source="gateway", tenant=tenant, subject=f"cmpl-{n}")


class Publisher:
    def __init__(self, settings: ServiceSettings) -> None:
        self.prefix = settings.kafka_topic_prefix
        self.kafka = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, acks="all"
        )

    async def events(self, *events: Envelope[Any], timestamp: datetime | None = None) -> None:
        for event in events:
            encoded = CODEC.encode(event)
            await self.kafka.send_and_wait(
                f"{self.prefix}{COMPLETIONS.topic}",
                encoded.value,
                key=encoded.key,
                headers=[(k, v.encode()) for k, v in encoded.headers.items()],
                timestamp_ms=int(timestamp.timestamp() * 1000) if timestamp else None,
            )

    async def raw(self, topic: str, value: bytes, headers: dict[str, str]) -> None:
        await self.kafka.send_and_wait(
            f"{self.prefix}{topic}",
            value,
            key=b"poison",
            headers=[(k, v.encode()) for k, v in headers.items()],
        )


@pytest.fixture
async def publish(service_settings: Callable[..., ServiceSettings]) -> Any:
    publisher = Publisher(service_settings())
    await publisher.kafka.start()
    yield publisher
    await publisher.kafka.stop()


async def tail(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, list[dict[str, Any]], str]:
    """Run `llmops tail` in process (in a thread: the loop stays free); status, lines, stderr."""
    argv = [
        "tail",
        *args,
        "--bootstrap",
        settings.kafka_bootstrap_servers,
        "--prefix",
        settings.kafka_topic_prefix,
    ]
    capsys.readouterr()
    status = await asyncio.wait_for(asyncio.to_thread(main, argv), timeout=60)
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err


async def test_from_the_beginning_with_filters_and_max(
    service_settings: Callable[..., ServiceSettings],
    publish: Publisher,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = service_settings()
    events = [
        completion(0, model="gpt-4o", latency_ms=900),
        completion(1, model="llama", latency_ms=900),
        completion(2, model="gpt-4o", latency_ms=100),
        completion(3, model="gpt-4o", latency_ms=501, tenant="globex"),
        completion(4, model="gpt-4o", latency_ms=700),
    ]
    await publish.events(*events[:2])
    await publish.raw(Topic.LLM_COMPLETIONS, b"{not json", {"content-type": "application/json"})
    await publish.events(*events[2:])

    status, lines, err = await tail(
        settings,
        capsys,
        "llm.completions",
        "--from-beginning",
        "--filter",
        "data.served_model=gpt-4o",
        "--filter",
        "data.latency_ms>500",
        "--max",
        "2",
    )
    assert status == 0, err
    first, error, second = lines  # in offset order; a record that does not decode is shown
    assert (error["offset"], error["value"]) == (2, "{not json")
    assert "not valid JSON" in error["error"]
    assert [first, second] == [events[0].model_dump(mode="json"), events[3].model_dump(mode="json")]
    assert "2 events" in err

    # To the end and no further; list fields match by element; Kafka coordinates on request.
    status, lines, err = await tail(
        settings,
        capsys,
        "llm.completions",
        "--from-beginning",
        "--no-follow",
        "--meta",
        "-f",
        "data.tags=vip",
        "-f",
        "tenant!=globex",
    )
    assert status == 0, err
    assert [line.get("subject") for line in lines] == ["cmpl-1", None]  # cmpl-3 is globex's
    assert lines[0]["kafka"]["offset"] == 1
    assert lines[0]["kafka"]["key"] == "cmpl-1"


async def test_since_starts_at_the_first_event_kafka_timestamped_after_it(
    service_settings: Callable[..., ServiceSettings],
    publish: Publisher,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = service_settings()
    now = datetime.now(UTC)
    await publish.events(completion(0), completion(1), timestamp=now - timedelta(hours=3))
    await publish.events(completion(2), completion(3), timestamp=now - timedelta(minutes=5))

    status, lines, err = await tail(
        settings, capsys, "llm.completions", "--since", "1h", "--no-follow"
    )
    assert status == 0, err
    assert [line["subject"] for line in lines] == ["cmpl-2", "cmpl-3"]

    since = (now - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, lines, err = await tail(
        settings, capsys, "llm.completions", "--since", since, "--no-follow", "--max", "3"
    )
    assert [line["subject"] for line in lines] == ["cmpl-0", "cmpl-1", "cmpl-2"]


async def test_a_dead_letter_topic_prints_raw_values_with_their_reasons(
    service_settings: Callable[..., ServiceSettings],
    publish: Publisher,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = service_settings()
    failed = completion(7)
    dead_headers = {
        "content-type": "application/json",
        "dlq-reason": "invalid",
        "dlq-error-class": "EventDecodeError",
        "dlq-error-message": "not valid JSON",
        "dlq-original-offset": "12",
    }
    await publish.raw(COMPLETIONS.dlq, b"\xff\x00binary", dead_headers)
    await publish.raw(COMPLETIONS.dlq, b"{not json", dead_headers)
    await publish.raw(
        COMPLETIONS.dlq, CODEC.encode(failed).value, dead_headers | {"dlq-reason": "failed"}
    )

    status, lines, err = await tail(
        settings,
        capsys,
        "llm.completions.dlq",
        "--from-beginning",
        "--no-follow",
        "--filter",
        "headers.dlq-original-offset=12",
    )
    assert status == 0, err
    binary, not_json, decodable = lines
    assert binary["value_base64"] == "/wBiaW5hcnk="
    assert not_json["value"] == "{not json"
    assert not_json["headers"] == dead_headers
    assert not_json["key"] == "poison"
    assert "event" not in not_json
    assert decodable["headers"]["dlq-reason"] == "failed"
    assert decodable["event"] == failed.model_dump(mode="json")

    status, lines, _ = await tail(
        settings,
        capsys,
        "llm.completions.dlq",
        "--from-beginning",
        "--max",
        "1",
        "-f",
        "headers.dlq-reason=failed",
    )
    assert [line["event"]["subject"] for line in lines] == ["cmpl-7"]


async def test_follows_new_events_from_the_end_and_ctrl_c_exits_cleanly(
    service_settings: Callable[..., ServiceSettings], publish: Publisher
) -> None:
    settings = service_settings()
    await publish.events(completion(0))  # before the tail started: not printed
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmops.cli",
        "tail",
        "llm.completions",
        "--filter",
        "tenant=acme",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        ready = await asyncio.wait_for(process.stderr.readline(), timeout=60)
        assert b"from the end" in ready, ready
        await publish.events(completion(1, tenant="globex"), completion(2))
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        assert json.loads(line)["subject"] == "cmpl-2"
        process.send_signal(signal.SIGINT)
        status = await asyncio.wait_for(process.wait(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    rest = await process.stderr.read()
    assert status == 0, rest
    assert b"Traceback" not in rest
    assert await process.stdout.read() == b""


async def test_an_unknown_topic_is_refused_with_the_list_of_topics(
    service_settings: Callable[..., ServiceSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    status, lines, err = await tail(service_settings(), capsys, "llm.completion")
    assert (status, lines) == (2, [])
    assert "unknown topic 'llm.completion'" in err
    assert "llm.completions" in err
    assert "feedback.recorded" in err
    assert time.monotonic() - started < 10
