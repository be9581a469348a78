"""The monitoring service against the real broker and database: rollups, queries, /metrics,
dead letters, and a SIGKILL in the middle of the stream that loses and double counts nothing."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from monitoring_traffic import publish
from pymongo import AsyncMongoClient

from llmops.bus.provision import ensure_topics, topic_specs
from llmops.events.catalog import CallStatus, Topic
from llmops.storage import MongoDocument
from llmops.testing import (
    SettingsFactory,
    free_port,
    headers_of,
    read_topic,
    serving,
    wait_answering,
    wait_until,
)
from llmops.traffic import CompletionTraffic
from llmops_monitoring.app import create_app
from llmops_monitoring.drift_samples import SAMPLES
from llmops_monitoring.rollup_store import FLUSHES, SourcePartition
from llmops_monitoring.settings import MonitoringSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DAY = {"window": "1d", "since": "2026-11-23T00:00:00Z", "until": "2026-11-24T00:00:00Z"}


async def total_requests(client: httpx.AsyncClient) -> int:
    answer = await client.get(
        "/v1/metrics/top", params={"metric": "requests", "by": "tenant", **DAY}
    )
    assert answer.status_code == 200, answer.text
    return int(sum(row["value"] for row in answer.json()["top"]))


async def test_rollups_answer_exact_counts_costs_and_one_percent_quantiles(
    service_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = service_settings(
        MonitoringSettings,
        flush_interval_s=0.2,
        compact_interval_s=0.5,  # queries read compacted and fresh deltas together
        archive_dir=tmp_path / "archive",
    )
    traffic = CompletionTraffic(start=START, error_every=25)
    events = traffic.events(1500)
    # a producer's duplicate send (same envelope id) must not count twice
    await publish(settings, [*events, events[0], events[1]], b"{not json")

    async with serving(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        await wait_until(
            lambda: _equals(total_requests(client), len(events)), timeout=60, what="all events"
        )
        cost = await client.get(
            "/v1/metrics/top", params={"metric": "cost_usd", "by": "tenant", **DAY}
        )
        latency = await client.get(
            "/v1/metrics/series",
            params={"metric": "latency_p95_ms", "group_by": "model", **DAY},
        )
        errors = await client.get(
            "/v1/metrics/top", params={"metric": "error_rate", "by": "model,prompt", **DAY}
        )
        minutes = await client.get(
            "/v1/metrics/series",
            params={
                "metric": "requests",
                "window": "1m",
                "since": "2026-11-23T10:00:00Z",
                "until": "2026-11-23T10:02:00Z",
                "tenant": "acme",
            },
        )
        scraped = (await client.get("/metrics")).text
        bad = await client.get("/v1/metrics/series", params={"metric": "latency_p42", **DAY})
        reversed_range = await client.get(
            "/v1/metrics/series",
            params={"metric": "requests", "since": "2026-11-24T00:00:00Z", "until": DAY["since"]},
        )

    expected_cost: dict[str, float] = defaultdict(float)
    latencies: dict[str, list[float]] = defaultdict(list)
    failures: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for event in events:
        data = event.data
        expected_cost[event.tenant] += data.cost_usd
        failed = data.status is CallStatus.ERROR
        if not failed:
            latencies[data.served_model].append(data.latency_ms)
        failures[(data.served_model, f"support@{data.prompt.version}")].append(failed)  # type: ignore[union-attr]

    ranked = {row["labels"]["tenant"]: row["value"] for row in cost.json()["top"]}
    assert ranked.keys() == expected_cost.keys()
    for tenant, value in ranked.items():
        assert math.isclose(value, expected_cost[tenant], rel_tol=1e-9)

    series = {line["labels"]["model"]: line["points"] for line in latency.json()["series"]}
    assert series.keys() == latencies.keys()
    for model, points in series.items():
        exact = float(np.quantile(latencies[model], 0.95, method="lower"))
        assert len(points) == 1
        assert abs(points[0]["value"] - exact) <= 0.01 * exact

    for row in errors.json()["top"]:
        labels = row["labels"]
        outcomes = failures[(labels["model"], labels["prompt"])]
        assert row["value"] == pytest.approx(sum(outcomes) / len(outcomes))

    acme_minutes = Counter_of(
        event.time.replace(second=0, microsecond=0)
        for event in events
        if event.tenant == "acme" and event.time < START + timedelta(minutes=2)
    )
    points = minutes.json()["series"][0]["points"]
    assert {datetime.fromisoformat(p["time"]): p["value"] for p in points} == acme_minutes

    acme_a = 'api_key_id="key-1",model="model-a",prompt="support@1",tenant="acme"'
    expected_acme_a = sum(
        True
        for e in events
        if (e.tenant, e.data.served_model, e.data.api_key_id, e.data.prompt.version)  # type: ignore[union-attr]
        == ("acme", "model-a", "key-1", 1)
    )
    assert f"llmops_llm_requests_total{{{acme_a}}} {float(expected_acme_a)}" in scraped
    assert 'llmops_monitoring_events_total{topic="llm.completions"} 1503.0' in scraped

    assert bad.status_code == 422
    assert "unknown metric 'latency_p42'" in bad.json()["detail"]
    assert reversed_range.status_code == 422
    assert "must be before until" in reversed_range.text

    # drift samples: the first 30 answered completions of each minute and dimension set
    per_cell: dict[tuple[Any, ...], int] = defaultdict(int)
    for event in events:
        if event.data.status is CallStatus.OK:
            cell = (
                event.time.replace(second=0, microsecond=0),
                event.tenant,
                event.data.api_key_id,
            )
            per_cell[cell] += 1
    mongo: AsyncMongoClient[MongoDocument] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value()
    )
    try:
        stored = await mongo[settings.mongodb_database][SAMPLES].count_documents({})
    finally:
        await mongo.close()
    assert stored == sum(min(count, 30) for count in per_cell.values())

    dead = await read_topic(
        settings.kafka_bootstrap_servers,
        f"{settings.kafka_topic_prefix}llm.completions.dlq",
        count=1,
    )
    assert dead[0].value == b"{not json"
    assert headers_of(dead[0])["dlq-reason"] == "invalid"


def Counter_of(items: Any) -> dict[datetime, float]:  # reads as a constructor
    counts: dict[datetime, float] = defaultdict(float)
    for item in items:
        counts[item] += 1
    return dict(counts)


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)


def start_monitoring(settings: MonitoringSettings, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "MONGODB_URL": settings.mongodb_url.get_secret_value(),
        "MONGODB_DATABASE": settings.mongodb_database,
        "MONITORING_PORT": str(port),
        "MONITORING_FLUSH_INTERVAL_S": "0.1",
        "MONITORING_COMPACT_INTERVAL_S": "0.3",
        "MONITORING_ARCHIVE_DIR": "",
    }
    return subprocess.Popen([sys.executable, "-m", "llmops_monitoring"], env=env)


async def test_a_killed_monitor_restarts_without_losing_or_double_counting(
    service_settings: SettingsFactory,
) -> None:
    settings = service_settings(MonitoringSettings)
    traffic = CompletionTraffic(start=START, spacing=timedelta(milliseconds=5))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    monitor = start_monitoring(settings, port)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await wait_answering(f"{url}/healthz", monitor)
            await publish(settings, traffic.events(3000))
            counted = await wait_until(
                lambda: _some(total_requests(client)), timeout=60, what="a first flush"
            )
            await publish(settings, traffic.events(3000))
            monitor.send_signal(signal.SIGKILL)  # in the middle of folding and flushing
            monitor.wait(timeout=10)
            assert counted is not None
            assert 0 < counted < 6000

            monitor = start_monitoring(settings, port)
            await wait_answering(f"{url}/healthz", monitor)
            await wait_until(
                lambda: _equals(total_requests(client), 6000), timeout=90, what="every event"
            )
            tokens = await client.get(
                "/v1/metrics/top", params={"metric": "prompt_tokens", "by": "model", **DAY}
            )
    finally:
        monitor.terminate()
        monitor.wait(timeout=30)
    by_model: dict[str, float] = defaultdict(float)
    for event in traffic.made:
        by_model[event.data.served_model] += event.data.usage.prompt_tokens
    assert {row["labels"]["model"]: row["value"] for row in tokens.json()["top"]} == by_model


async def test_two_monitors_share_the_partitions_and_count_every_event_once(
    service_settings: SettingsFactory,
) -> None:
    """A second process joins mid-stream: the group rebalances, batches in flight on the
    first are dropped or kept by where their partitions resume, and each event counts once."""
    settings = service_settings(MonitoringSettings)
    config = {"defaults": {"partitions": 4, "retention_hours": 1, "dlq_retention_hours": 1}}
    completions = f"{settings.kafka_topic_prefix}{Topic.LLM_COMPLETIONS}"
    specs = topic_specs(config, prefix=settings.kafka_topic_prefix)
    await ensure_topics(
        settings.kafka_bootstrap_servers, [s for s in specs if s.name == completions]
    )
    traffic = CompletionTraffic(start=START, spacing=timedelta(milliseconds=5))
    ports = [free_port(), free_port()]
    monitors = [start_monitoring(settings, ports[0])]

    async def publish_until_the_second_folds() -> float:
        await publish(settings, traffic.events(500))
        return await completions_consumed(ports[1])

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=30) as client:
            await wait_answering(f"http://127.0.0.1:{ports[0]}/healthz", monitors[0])
            await publish(settings, traffic.events(4000))
            monitors.append(start_monitoring(settings, ports[1]))
            await publish(settings, traffic.events(4000))
            await wait_answering(f"http://127.0.0.1:{ports[1]}/healthz", monitors[1])
            await wait_until(
                publish_until_the_second_folds, timeout=60, interval=0.5, what="a rebalance"
            )
            await publish(settings, traffic.events(4000))
            published = len(traffic.made)
            await wait_until(
                lambda: _equals(total_requests(client), published), timeout=90, what="all"
            )
            assert await completions_consumed(ports[0]) > 0
            await wait_until(
                lambda: flushed_to_the_end(settings, partitions=4),
                timeout=60,
                what="a flush at the end of every partition",
            )
            assert await total_requests(client) == published  # nothing more came after all
    finally:
        for monitor in monitors:
            monitor.terminate()
            monitor.wait(timeout=30)


async def flushed_to_the_end(settings: MonitoringSettings, *, partitions: int) -> bool:
    """Whether the last committed flush of every completions partition reaches its end."""
    topic = f"{settings.kafka_topic_prefix}{Topic.LLM_COMPLETIONS}"
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    mongo: AsyncMongoClient[MongoDocument] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value()
    )
    try:
        flushes = mongo[settings.mongodb_database][FLUSHES]
        for tp, end in ends.items():
            source = SourcePartition(Topic.LLM_COMPLETIONS.value, tp.partition).key()
            last = await flushes.find_one({"source": source}, sort=[("end", -1)])
            if end and (last is None or int(last["end"]) < end):
                return False
        return True
    finally:
        await mongo.close()


async def completions_consumed(port: int) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        metrics = await client.get(f"http://127.0.0.1:{port}/metrics")
    prefix = 'llmops_monitoring_events_total{topic="llm.completions"}'
    lines = [line for line in metrics.text.splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


async def _some(value: Any) -> int | None:
    count = int(await value)
    return count or None
