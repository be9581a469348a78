"""Every topic's model goes through the real broker and comes back equal, schema-validated."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any

import fastavro
import pytest
from opentelemetry.sdk.trace import TracerProvider

from llmops.bus import EventBus
from llmops.contracts.samples import example_payload
from llmops.events.base import TopicContract
from llmops.events.catalog import CONTRACTS
from llmops.events.codec import CONTENT_TYPES, wire_schema
from llmops.events.envelope import Envelope
from llmops.settings import ServiceSettings, WireFormat
from llmops.telemetry import ServiceMetrics
from llmops.testing import headers_of, read_topic

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("wire_format", list(WireFormat))
async def test_every_topic_round_trips_through_kafka(
    service_settings: Callable[..., ServiceSettings], wire_format: WireFormat
) -> None:
    settings = service_settings(EVENT_WIRE_FORMAT=wire_format.value)
    bus = EventBus(settings, tracer_provider=TracerProvider(), metrics=ServiceMetrics("test"))
    received: dict[str, Envelope[Any]] = {}
    all_arrived = asyncio.Event()

    def collector(topic: str) -> Callable[[Envelope[Any]], Any]:
        async def collect(event: Envelope[Any]) -> None:
            received[topic] = event
            if len(received) == len(CONTRACTS):
                all_arrived.set()

        return collect

    for contract in CONTRACTS.values():
        bus.subscribe(contract, collector(contract.topic))
    await bus.start()
    try:
        sent = {}
        for contract in CONTRACTS.values():
            payload = contract.payload.model_validate(example_payload(contract.schema))
            sent[contract.topic] = await bus.emit(
                contract, payload, tenant="acme", subject=f"{contract.topic}:1"
            )
        await asyncio.wait_for(all_arrived.wait(), timeout=90)
    finally:
        await bus.stop()

    assert received == sent
    for contract in CONTRACTS.values():
        await _assert_on_the_wire(settings, bus.topic_name(contract.topic), contract, wire_format)


async def _assert_on_the_wire(
    settings: ServiceSettings, topic: str, contract: TopicContract[Any], wire_format: WireFormat
) -> None:
    """The bytes in Kafka are in the declared format and valid against the Avro schema."""
    (record,) = await read_topic(settings.kafka_bootstrap_servers, topic, count=1)
    headers = headers_of(record)
    assert headers["content-type"] == CONTENT_TYPES[wire_format]
    assert headers["schema-version"] == str(contract.version)
    assert record.key == f"{contract.topic}:1".encode()
    schema = fastavro.parse_schema(wire_schema(contract.schema))
    assert isinstance(schema, dict)
    if wire_format is WireFormat.AVRO:
        datum = fastavro.schemaless_reader(io.BytesIO(record.value), schema, None)
        assert isinstance(datum, dict)
        assert datum["type"] == contract.event_type
    else:
        envelope = json.loads(record.value)
        assert envelope["type"] == contract.event_type
        assert set(envelope) == {field["name"] for field in schema["fields"]}
