"""How the consumer settles folded batches; the whole consumer runs against the broker in
tests/integration/test_monitoring_rollups.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from llmops.bus import EventBus
from llmops.events.catalog import Topic
from llmops.events.codec import CONTENT_TYPE, EventCodec
from llmops.settings import WireFormat
from llmops.telemetry import ServiceMetrics
from llmops.traffic import COMPLETIONS, CompletionTraffic
from llmops_monitoring.live_metrics import LiveMetrics
from llmops_monitoring.rollup_store import SourcePartition
from llmops_monitoring.settings import MonitoringSettings
from llmops_monitoring.stream_consumer import (
    Assignment,
    CompletionBatch,
    PartitionFold,
    StreamMonitor,
)


def consumer_records(topic: str, values: list[bytes]) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(
            topic=topic,
            partition=0,
            offset=offset,
            timestamp=0,
            timestamp_type=0,
            key=None,
            value=value,
            checksum=None,
            serialized_key_size=-1,
            serialized_value_size=len(value),
            headers=[(CONTENT_TYPE, b"application/json")],
        )
        for offset, value in enumerate(values)
    ]


def completions(count: int) -> list[bytes]:
    traffic = CompletionTraffic(start=datetime(2026, 11, 23, 9, 58, tzinfo=UTC))
    codec = EventCodec(COMPLETIONS, WireFormat.JSON)
    return [codec.encode(event).value for event in traffic.events(count)]


def monitor() -> StreamMonitor:
    settings = MonitoringSettings()
    bus = EventBus(settings, tracer_provider=TracerProvider(), metrics=ServiceMetrics("mon"))
    unused = cast(Any, None)  # settling a batch neither writes nor stores samples
    return StreamMonitor(
        settings, bus=bus, store=unused, samples=unused, live=LiveMetrics(CollectorRegistry())
    )


async def test_a_batch_polled_before_its_partition_moved_counts_once_when_read_again() -> None:
    """A batch folded while its partition was revoked and assigned again is dropped; its
    ids must not make the same records duplicates when the new assignment reads them."""
    consumer = monitor()
    topic = consumer._bus.topic_name(Topic.LLM_COMPLETIONS)
    tp = TopicPartition(topic, 0)
    records = consumer_records(topic, completions(10))
    source = SourcePartition(Topic.LLM_COMPLETIONS, 0)

    def assign() -> tuple[PartitionFold, Assignment]:
        fold = consumer._folds[tp] = PartitionFold(source, Assignment(0), 0, 0)
        return fold, fold.assignment

    _, before = assign()
    folded = consumer._fold_batches([CompletionBatch(tp, before, records)])
    fold, after = assign()  # revoked and assigned again while the batch was folding
    await consumer._settle(folded)
    assert fold.end == 0
    assert not fold.book.cells()

    await consumer._settle(consumer._fold_batches([CompletionBatch(tp, after, records)]))
    assert sum(cell.aggregate.requests for cell in fold.book.cells()) == 10
    assert fold.end == 10
