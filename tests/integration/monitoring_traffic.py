"""Publishing completion traffic for the monitoring tests, as the gateway would."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from llmops.events.codec import EventCodec
from llmops.traffic import COMPLETIONS
from llmops_monitoring.settings import MonitoringSettings


async def publish(settings: MonitoringSettings, events: list[Any], *extra: bytes) -> None:
    """Send `events` to llm.completions, then the raw `extra` values (poison)."""
    codec = EventCodec(COMPLETIONS, settings.event_wire_format)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    topic = f"{settings.kafka_topic_prefix}{COMPLETIONS.topic}"
    try:
        for event in events:
            encoded = codec.encode(event)
            headers = [(name, value.encode()) for name, value in encoded.headers.items()]
            await producer.send(topic, encoded.value, key=encoded.key, headers=headers)
        for value in extra:
            await producer.send(topic, value, key=b"poison")
        await producer.flush()
    finally:
        await producer.stop()
