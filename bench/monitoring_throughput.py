"""How fast one monitoring process folds completions from the real broker, against raw aiokafka.

`--events` completion events of about 1.3 KB (`llmops.traffic`: four tenants, three
models, two prompt versions, five keys) are produced to a fresh topic. Then, in the same
run and on the same records:

- raw: an aiokafka consumer in a new group polls every record (the peer: the least any
  Kafka consumer must do);
- monitoring: the service's `StreamMonitor` in a new group reads, validates, folds and
  flushes every record to the rollups in MongoDB, timed until the last flush is stored.

The last line printed is one JSON object: `events_per_s`, `raw_consume_per_s`, `ratio`
(target: at least 20,000 events/s and 0.5x raw).

    make bench-monitoring
    python bench/monitoring_throughput.py --events 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from llmops.bus import EventBus
from llmops.bus.provision import ensure_topics, topic_specs
from llmops.events.catalog import Topic
from llmops.events.codec import EventCodec
from llmops.settings import WireFormat
from llmops.telemetry import ServiceMetrics
from llmops.traffic import COMPLETIONS, CompletionTraffic
from llmops_monitoring.drift_samples import DriftSampleStore
from llmops_monitoring.live_metrics import LiveMetrics
from llmops_monitoring.rollup_store import FLUSHES, RollupStore
from llmops_monitoring.settings import MonitoringSettings
from llmops_monitoring.stream_consumer import StreamMonitor


async def produce(bootstrap: str, topic: str, events: int) -> int:
    traffic = CompletionTraffic(
        start=datetime.now(UTC) - timedelta(minutes=10),
        tenants=("tenant-0", "tenant-1", "tenant-2", "tenant-3"),
        keys=("key-0", "key-1", "key-2", "key-3", "key-4"),
        spacing=timedelta(milliseconds=1),
    )
    codec = EventCodec(COMPLETIONS, WireFormat.JSON)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    size = 0
    try:
        pending = []
        for _ in range(events):
            encoded = codec.encode(traffic.events(1)[0])
            traffic.made.clear()
            size = len(encoded.value)
            pending.append(await producer.send(topic, encoded.value, key=encoded.key))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return size


async def raw_consume(bootstrap: str, topic: str, events: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=20_000,  # the monitor's consumer settings
        fetch_max_bytes=32 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen = len(await consumer.getmany(timeout_ms=10_000, max_records=1))
        started = time.perf_counter()
        while seen < events:
            batch = await consumer.getmany(timeout_ms=1_000, max_records=20_000)
            seen += sum(len(records) for records in batch.values())
        return (events - 1) / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def monitor_consume(
    settings: MonitoringSettings, mongo_url: str, database: str, events: int
) -> float:
    metrics = ServiceMetrics("monitoring")
    bus = EventBus(settings, tracer_provider=TracerProvider(), metrics=metrics)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[database]
    await RollupStore.create_indexes(db)
    await DriftSampleStore.create_indexes(db)
    monitor = StreamMonitor(
        settings,
        bus=bus,
        store=RollupStore(db),
        samples=DriftSampleStore(db),
        live=LiveMetrics(CollectorRegistry()),
    )
    await bus.start()
    await monitor.start()
    try:
        while not monitor.partitions:  # noqa: ASYNC110  # the group is joined: start the clock
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        while True:
            last = await db[FLUSHES].find_one({}, sort=[("end", -1)])
            if last is not None and int(last["end"]) >= events:
                break
            await asyncio.sleep(0.05)
        return events / (time.perf_counter() - started)
    finally:
        await monitor.stop()
        await bus.stop()
        await client.drop_database(database)
        await client.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


class RoundSettings(MonitoringSettings):
    """The service's settings with a consumer group of the round's own."""

    bench_round: int = 0

    @property
    def consumer_group(self) -> str:
        return f"{super().consumer_group}-round{self.bench_round}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--rounds", type=int, default=3, help="best of, each side")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    mongo_url = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    config = {"defaults": {"partitions": 1, "retention_hours": 1, "dlq_retention_hours": 1}}
    specs = topic_specs(config, prefix=prefix)
    await ensure_topics(bootstrap, specs)
    topic = f"{prefix}{Topic.LLM_COMPLETIONS}"
    size = await produce(bootstrap, topic, args.events)
    print(f"produced {args.events} completion events of {size} bytes", flush=True)
    raws: list[float] = []
    rates: list[float] = []
    try:
        for n in range(args.rounds):  # alternate the two sides: the machine's noise hits both
            raws.append(await raw_consume(bootstrap, topic, args.events))
            print(f"round {n + 1}: raw aiokafka {raws[-1]:,.0f} events/s", flush=True)
            settings = RoundSettings.model_validate(
                {
                    "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                    "KAFKA_TOPIC_PREFIX": prefix,
                    "MONGODB_URL": mongo_url,
                    "archive_dir": None,
                    "bench_round": n,
                }
            )
            database = f"bench_{prefix[5:-1]}_{n}"
            rates.append(await monitor_consume(settings, mongo_url, database, args.events))
            print(f"round {n + 1}: monitoring {rates[-1]:,.0f} events/s folded and stored")
    finally:
        await delete_topics(bootstrap, [spec.name for spec in specs])
    rate, raw = max(rates), max(raws)
    result = {
        "events": args.events,
        "event_bytes": size,
        "events_per_s": round(rate),
        "raw_consume_per_s": round(raw),
        "ratio": round(rate / raw, 3),
        "rounds": args.rounds,
        "events_per_s_rounds": [round(r) for r in rates],
        "raw_consume_per_s_rounds": [round(r) for r in raws],
        "target_events_per_s": 20_000,
        "target_ratio": 0.5,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
