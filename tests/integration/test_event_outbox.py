"""The outbox never blocks its caller and delivers every event exactly once across outages.

The outage tests run a broker of their own (`private_kafka`) and stop, pause and restart
it; the others use the shared broker, with "Kafka down" being an address nobody listens
on (what a stopped broker looks like to a client: connection refused).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from private_kafka import PrivateKafka

from llmops.bus import EventBus
from llmops.bus.outbox import EventOutbox
from llmops.bus.spool import EventSpool
from llmops.events.catalog import CONTRACTS, FeedbackSubmitted, Topic
from llmops.events.codec import EventCodec
from llmops.events.envelope import new_event
from llmops.settings import ServiceSettings, WireFormat
from llmops.telemetry import ServiceMetrics
from llmops.testing import free_port, wait_until

pytestmark = [pytest.mark.kafka]

FEEDBACK = CONTRACTS[Topic.FEEDBACK_EVENTS]
CODEC = EventCodec(FEEDBACK, WireFormat.JSON)
KEYS = 4
# submit() only appends to a queue. The bound is generous (the machine may be busy) and
# still far below what a single blocking send to a dead broker costs: EVENT_SEND_TIMEOUT_S
# here, aiokafka's 40 s metadata wait without the outbox.
SUBMIT_BOUND_S = 1.0
DROPPED = "llmops_events_dropped_total"

OutboxFactory = Callable[..., Awaitable[EventOutbox]]


@pytest.fixture
async def make_outbox(tmp_path: Path) -> AsyncIterator[OutboxFactory]:
    """Start outboxes on a given broker and spool directory; every one is stopped after."""
    started: list[EventOutbox] = []

    async def build(
        bootstrap: str,
        prefix: str,
        *,
        spool_dir: Path | None = None,
        max_bytes: int = 64 << 20,
        tracer_provider: TracerProvider | None = None,
        **options: Any,
    ) -> EventOutbox:
        settings = ServiceSettings.model_validate(
            {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
        )
        provider = tracer_provider or TracerProvider()
        bus = EventBus(settings, tracer_provider=provider, metrics=ServiceMetrics("gw"))
        spool = EventSpool(spool_dir or tmp_path / "spool", max_bytes=max_bytes)
        outbox = EventOutbox(bus, spool, **{"send_timeout_s": 2.0, "retry_max_s": 0.5, **options})
        await outbox.start()
        started.append(outbox)
        return outbox

    yield build
    for outbox in started:
        await outbox.stop()


def _submit(outbox: EventOutbox, first: int, count: int) -> list[str]:
    """Submit events `first`..`first+count-1`, keyed round-robin over KEYS; their ids."""
    ids = []
    for n in range(first, first + count):
        payload = FeedbackSubmitted(completion_id=f"cmpl-{n}", user_id="u-1", comment=str(n))
        event = new_event(
            FEEDBACK, payload, source="gateway", tenant="acme", subject=f"cmpl-{n % KEYS}"
        )
        outbox.submit(event)
        ids.append(event.id)
    return ids


async def _read_all(bootstrap: str, topic: str) -> list[tuple[str, str, dict[str, str]]]:
    """Every record on `topic` up to its current end, in log order: (key, event id, headers)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    headers = {name: value.decode() for name, value in record.headers}
                    event = CODEC.decode(record.value, headers)
                    seen.append((record.key.decode(), event.id, headers))
        return seen
    finally:
        await consumer.stop()


def _assert_each_once_in_order(submitted: list[str], on_topic: list[tuple[str, str, Any]]) -> None:
    counts = Counter(event_id for _, event_id, _ in on_topic)
    duplicated = {event_id: n for event_id, n in counts.items() if n > 1}
    assert not duplicated, f"delivered more than once: {duplicated}"
    assert set(counts) == set(submitted), f"missing: {set(submitted) - set(counts)}"
    position = {event_id: n for n, event_id in enumerate(submitted)}
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, event_id, _ in on_topic:
        by_key[key].append(position[event_id])
    for key, order in by_key.items():
        assert order == sorted(order), f"events of {key} out of order"


async def _drained(outbox: EventOutbox) -> None:
    await _settles(
        outbox,
        lambda: outbox.connected and not (outbox.spooled or outbox.queued or outbox.in_flight),
        "the outbox to deliver everything",
    )


async def _settles(outbox: EventOutbox, condition: Callable[[], bool], what: str) -> None:
    try:
        await wait_until(condition, timeout=120, interval=0.05, what=what)
    except TimeoutError as exc:
        state = (
            f"connected={outbox.connected} queued={outbox.queued} "
            f"in_flight={outbox.in_flight} spooled={outbox.spooled}"
        )
        raise AssertionError(f"{exc}; outbox: {state}") from exc


def _sample(outbox: EventOutbox, name: str, **labels: str) -> float:
    metrics: ServiceMetrics = outbox._metrics  # the test reads what /metrics would show
    value = metrics.registry.get_sample_value(name, {"service": outbox._service, **labels})
    return value or 0.0


@pytest.mark.timeout(300)
async def test_broker_outage_spools_then_delivers_each_event_once(
    private_kafka: PrivateKafka, make_outbox: OutboxFactory, tmp_path: Path
) -> None:
    prefix = await private_kafka.create_topics()
    topic = f"{prefix}{FEEDBACK.topic}"
    outbox = await make_outbox(private_kafka.bootstrap, prefix)

    submitted = _submit(outbox, 0, 10)
    await _drained(outbox)
    assert len(await _read_all(private_kafka.bootstrap, topic)) == 10

    await private_kafka.stop()
    started = time.monotonic()
    submitted += _submit(outbox, 10, 300)
    assert time.monotonic() - started < SUBMIT_BOUND_S, "submit() waited for the broker"
    await wait_until(
        lambda: outbox.spooled == 300, timeout=60, what="the events in the on-disk spool"
    )
    assert not outbox.connected
    assert list((tmp_path / "spool").glob("*.seg")), "nothing written to disk"
    assert _sample(outbox, "llmops_events_spooled") == 300

    await private_kafka.start()
    submitted += _submit(outbox, 310, 20)  # while the spool drains: must queue behind it
    await _drained(outbox)

    on_topic = await _read_all(private_kafka.bootstrap, topic)
    _assert_each_once_in_order(submitted, on_topic)
    assert len(on_topic) == 330
    assert _sample(outbox, "llmops_events_spooled") == 0
    delivered = sum(
        _sample(outbox, "llmops_events_delivered_total", topic=FEEDBACK.topic, via=via)
        for via in ("direct", "spool", "found")
    )
    assert delivered == 330
    assert not list((tmp_path / "spool").glob("*.seg")), "delivered events left on disk"


@pytest.mark.timeout(300)
async def test_sends_cut_off_by_a_hung_broker_are_not_duplicated(
    private_kafka: PrivateKafka, make_outbox: OutboxFactory
) -> None:
    prefix = await private_kafka.create_topics()
    topic = f"{prefix}{FEEDBACK.topic}"
    outbox = await make_outbox(private_kafka.bootstrap, prefix, send_timeout_s=1.5)
    submitted = _submit(outbox, 0, 5)
    await _drained(outbox)

    # A hung broker accepts the produce request and never answers: the outbox gives the
    # session up with the outcome unknown. On SIGCONT the broker may still write it.
    private_kafka.pause()
    try:
        submitted += _submit(outbox, 5, 50)
        await _settles(
            outbox,
            lambda: not outbox.connected and outbox.spooled == 50,
            "the unacknowledged sends in the spool",
        )
    finally:
        private_kafka.resume()
    submitted += _submit(outbox, 55, 5)
    await _drained(outbox)

    on_topic = await _read_all(private_kafka.bootstrap, topic)
    _assert_each_once_in_order(submitted, on_topic)
    found = _sample(outbox, "llmops_events_delivered_total", topic=FEEDBACK.topic, via="found")
    resent = _sample(outbox, "llmops_events_delivered_total", topic=FEEDBACK.topic, via="spool")
    assert found + resent == 55  # the 50 cut off, and 5 submitted while the spool drained


async def test_the_spool_outlives_the_process_that_wrote_it(
    kafka_bootstrap: str, topics: str, make_outbox: OutboxFactory, tmp_path: Path
) -> None:
    dead_kafka = f"127.0.0.1:{free_port()}"
    first = await make_outbox(dead_kafka, topics)
    started = time.monotonic()
    submitted = _submit(first, 0, 40)
    assert time.monotonic() - started < SUBMIT_BOUND_S
    await first.stop()  # Kafka down: everything queued goes to disk, nothing is lost

    restarted = await make_outbox(kafka_bootstrap, topics)
    assert restarted.spooled == 40
    submitted += _submit(restarted, 40, 5)
    await _drained(restarted)
    _assert_each_once_in_order(
        submitted, await _read_all(kafka_bootstrap, f"{topics}{FEEDBACK.topic}")
    )


async def test_stop_sends_what_is_queued_when_kafka_answers(
    kafka_bootstrap: str, topics: str, make_outbox: OutboxFactory
) -> None:
    outbox = await make_outbox(kafka_bootstrap, topics)
    submitted = _submit(outbox, 0, 25)
    await outbox.stop()
    assert outbox.spooled == 0
    _assert_each_once_in_order(
        submitted, await _read_all(kafka_bootstrap, f"{topics}{FEEDBACK.topic}")
    )


async def test_a_full_spool_drops_the_newest_events_and_counts_them(
    kafka_bootstrap: str, topics: str, make_outbox: OutboxFactory, tmp_path: Path
) -> None:
    dead_kafka = f"127.0.0.1:{free_port()}"
    spool_dir = tmp_path / "small-spool"
    outbox = await make_outbox(dead_kafka, topics, spool_dir=spool_dir, max_bytes=16 * 1024)
    submitted = _submit(outbox, 0, 200)
    await wait_until(
        lambda: outbox.spooled + _sample(outbox, DROPPED, reason="spool_full") == 200,
        timeout=30,
        what="every event spooled or dropped",
    )
    kept = outbox.spooled
    assert 0 < kept < 200
    assert sum(path.stat().st_size for path in spool_dir.glob("*.seg")) <= 16 * 1024
    assert _sample(outbox, "llmops_events_dropped_total", reason="spool_full") == 200 - kept
    await outbox.stop()

    recovered = await make_outbox(kafka_bootstrap, topics, spool_dir=spool_dir)
    await _drained(recovered)
    on_topic = await _read_all(kafka_bootstrap, f"{topics}{FEEDBACK.topic}")
    _assert_each_once_in_order(submitted[:kept], on_topic)  # the oldest were kept


async def test_a_full_queue_drops_instead_of_waiting(
    topics: str, make_outbox: OutboxFactory
) -> None:
    outbox = await make_outbox(f"127.0.0.1:{free_port()}", topics, queue_size=50)
    started = time.monotonic()
    _submit(outbox, 0, 500)  # no await in between: the background task cannot take any
    assert time.monotonic() - started < SUBMIT_BOUND_S
    assert outbox.queued == 50
    assert _sample(outbox, DROPPED, reason="queue_full") == 450
    await _settles(outbox, lambda: outbox.spooled == 50, "the queued events on disk")


async def test_a_corrupt_spool_segment_is_skipped_and_the_rest_delivered(
    kafka_bootstrap: str, topics: str, make_outbox: OutboxFactory, tmp_path: Path
) -> None:
    dead_kafka = f"127.0.0.1:{free_port()}"
    spool_dir = tmp_path / "spool"
    writer = await make_outbox(dead_kafka, topics, spool_dir=spool_dir, spool_linger_s=0)
    first = _submit(writer, 0, 3)
    await wait_until(lambda: writer.spooled == 3, timeout=30, what="the first segment")
    second = _submit(writer, 3, 3)
    await writer.stop()
    segments = sorted(spool_dir.glob("*.seg"))
    assert len(segments) == 2
    segments[0].write_bytes(segments[0].read_bytes()[:-20])  # the last record is torn

    outbox = await make_outbox(kafka_bootstrap, topics, spool_dir=spool_dir)
    await _drained(outbox)
    later = _submit(outbox, 6, 2)
    await _drained(outbox)
    on_topic = await _read_all(kafka_bootstrap, f"{topics}{FEEDBACK.topic}")
    _assert_each_once_in_order([*first[:2], *second, *later], on_topic)
    assert _sample(outbox, "llmops_events_dropped_total", reason="corrupt") == 1
    assert len(list((spool_dir / "corrupt").iterdir())) == 1


async def test_an_open_span_ends_up_in_the_event_headers(
    kafka_bootstrap: str, topics: str, make_outbox: OutboxFactory
) -> None:
    outbox = await make_outbox(kafka_bootstrap, topics)
    with TracerProvider().get_tracer("t").start_as_current_span("request") as span:
        assert trace.get_current_span() is span
        _submit(outbox, 0, 1)
    await _drained(outbox)
    ((_, _, headers),) = await _read_all(kafka_bootstrap, f"{topics}{FEEDBACK.topic}")
    # The caller's own span: its consumers' spans are children of the request that made it.
    _, trace_id, parent_id, _ = headers["traceparent"].split("-")
    assert trace_id == format(span.get_span_context().trace_id, "032x")
    assert parent_id == format(span.get_span_context().span_id, "016x")
    assert headers["content-type"] == "application/json"


async def test_events_submitted_within_the_linger_share_one_produce_request(
    kafka_bootstrap: str, topics: str, make_outbox: OutboxFactory
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    outbox = await make_outbox(kafka_bootstrap, topics, tracer_provider=provider, send_linger_s=0.5)
    submitted = _submit(outbox, 0, 1)
    await _drained(outbox)  # connected, and idle again
    spans.clear()
    for n in range(1, 6):  # one request after another
        submitted += _submit(outbox, n, 1)
        await asyncio.sleep(0.01)
    await _drained(outbox)
    batches = [
        span.attributes["messaging.batch.message_count"]
        for span in spans.get_finished_spans()
        if span.name == "outbox publish" and span.attributes
    ]
    assert batches == [5]
    _assert_each_once_in_order(
        submitted, await _read_all(kafka_bootstrap, f"{topics}{FEEDBACK.topic}")
    )
