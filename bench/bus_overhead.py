"""What the event bus costs over raw aiokafka, on the real broker, in one run.

Both sides use the same delivery guarantees: an idempotent `acks=all` producer awaiting
each send, and a consumer group committing after every message. The bus adds the
envelope, Avro-schema validation on publish, strict validation on consume, OpenTelemetry
spans and metrics. The last line printed is one JSON object of rates and ratios.

    make bench            # all benchmarks, against the dev stack's Kafka
    python bench/bus_overhead.py --events 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry.sdk.trace import TracerProvider

from llmops.bus import EventBus
from llmops.bus.provision import TopicSpec, ensure_topics, topic_specs
from llmops.contracts.samples import example_payload
from llmops.events.catalog import CONTRACTS, Topic
from llmops.events.codec import EventCodec
from llmops.events.envelope import Envelope, new_event
from llmops.settings import ServiceSettings
from llmops.telemetry import ServiceMetrics

CONTRACT = CONTRACTS[Topic.LLM_COMPLETIONS]


async def bench_raw(bootstrap: str, topic: str, value: bytes, events: int) -> tuple[float, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    started = time.perf_counter()
    try:
        for n in range(events):
            await producer.send_and_wait(topic, value, key=str(n).encode())
    finally:
        await producer.stop()
    publish_rate = events / (time.perf_counter() - started)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        await consumer.getone()  # the group is joined: start the clock
        await consumer.commit()
        started = time.perf_counter()
        for _ in range(events - 1):
            json.loads((await consumer.getone()).value)
            await consumer.commit()
    finally:
        await consumer.stop()
    return publish_rate, (events - 1) / (time.perf_counter() - started)


async def bench_bus(settings: ServiceSettings, events: int) -> tuple[float, float]:
    payload = CONTRACT.payload.model_validate(example_payload(CONTRACT.schema))
    publisher = EventBus(settings, tracer_provider=TracerProvider(), metrics=ServiceMetrics("p"))
    await publisher.start()
    started = time.perf_counter()
    try:
        for n in range(events):
            await publisher.emit(CONTRACT, payload, tenant="bench", subject=str(n))
    finally:
        await publisher.stop()
    publish_rate = events / (time.perf_counter() - started)

    consumer = EventBus(settings, tracer_provider=TracerProvider(), metrics=ServiceMetrics("c"))
    seen = 0
    first_at = 0.0
    done = asyncio.Event()

    async def count(_: Envelope[Any]) -> None:
        nonlocal seen, first_at
        seen += 1
        if seen == 1:
            first_at = time.perf_counter()
        if seen == events:
            done.set()

    consumer.subscribe(CONTRACT, count)
    await consumer.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=600)
    finally:
        await consumer.stop()
    return publish_rate, (events - 1) / (time.perf_counter() - first_at)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="events per side (default 3000)")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    raw_topic = f"{prefix}raw"
    specs = topic_specs({"defaults": {"partitions": 1, "retention_hours": 1}}, prefix=prefix)
    await ensure_topics(bootstrap, [*specs, TopicSpec(raw_topic, 1, 1, 3_600_000)])
    settings = ServiceSettings.model_validate(
        {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
    )
    # The raw side sends the very bytes the bus would, so only the bus's work differs.
    payload = CONTRACT.payload.model_validate(example_payload(CONTRACT.schema))
    event = new_event(CONTRACT, payload, source="bench", tenant="bench", subject="0")
    value = EventCodec(CONTRACT, settings.event_wire_format).encode(event).value

    print(f"bus overhead: {args.events} events of {len(value)} bytes per side")
    raw_publish, raw_consume = await bench_raw(bootstrap, raw_topic, value, args.events)
    print(f"  raw aiokafka: publish {raw_publish:,.0f}/s, consume {raw_consume:,.0f}/s")
    bus_publish, bus_consume = await bench_bus(settings, args.events)
    print(f"  event bus:    publish {bus_publish:,.0f}/s, consume {bus_consume:,.0f}/s")
    result = {
        "events": args.events,
        "bus_publish_per_s": round(bus_publish),
        "raw_publish_per_s": round(raw_publish),
        "publish_ratio": round(bus_publish / raw_publish, 3),
        "bus_consume_per_s": round(bus_consume),
        "raw_consume_per_s": round(raw_consume),
        "consume_ratio": round(bus_consume / raw_consume, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
