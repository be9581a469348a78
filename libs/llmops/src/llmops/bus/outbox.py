"""Publish events from request paths without ever waiting for Kafka (ADR 0009).

`EventOutbox.submit(event)` only appends to a bounded in-memory queue and returns. One
background task sends what is queued through an idempotent producer and waits for the
acknowledgements. While Kafka is unreachable (a send goes unacknowledged for
`EVENT_SEND_TIMEOUT_S`, or a connection attempt fails), events go to the on-disk
`EventSpool` instead, and so does every newer event until the spool is empty again, so
that events keep their order. Once a connection succeeds, the spool is drained oldest
first; an event leaves the disk only after Kafka acknowledged it.

Exactly once on the topic: an event is never handed to a producer twice unless the
first hand-off is known not to have been written. Within one producer session the
idempotent producer makes Kafka drop its retries' duplicates. When a session is given
up with sends unacknowledged, those events are kept as "tried"; before the next session
sends them, the outbox reads the topics from the time of the first try and skips every
event already there (`find_on_topics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from llmops.bus.delivery import (
    SendOutcome,
    close_producer,
    find_on_topics,
    record_digest,
    send_batch,
    start_producer,
)
from llmops.bus.eventbus import EventBus
from llmops.bus.spool import EventSpool, SpooledEvent, SpoolSegment
from llmops.bus.tracing import caller_headers, link_to
from llmops.events.codec import EventEncodeError
from llmops.events.envelope import Envelope
from llmops.telemetry.logs import get_logger

_log = get_logger(__name__)
_MAX_LINKS = 64


@dataclass(frozen=True)
class _Submitted:
    event: Envelope[Any]
    topic: str
    trace_headers: dict[str, str]


class OutboxClosedError(RuntimeError):
    """`submit` before `start()` or after `stop()`: the caller outlived its outbox."""


class EventOutbox:
    """Non-blocking publisher over an `EventBus`'s codecs, with an on-disk spool for outages.

    Create it in a service's `wire(context)`, `await start()`, push `stop` on
    `context.resources`, and call `submit()` from request handlers. Use it from the
    event loop's thread.
    """

    def __init__(
        self,
        bus: EventBus,
        spool: EventSpool,
        *,
        send_timeout_s: float | None = None,
        queue_size: int = 10_000,
        batch_size: int = 500,
        retry_min_s: float = 0.2,
        retry_max_s: float = 5.0,
        spool_linger_s: float = 0.02,
        send_linger_s: float = 0.02,
        clock_skew_s: float = 60.0,
        scan_timeout_s: float = 120.0,
    ) -> None:
        self._bus = bus
        self._spool = spool
        settings = bus.settings
        self._bootstrap = settings.kafka_bootstrap_servers
        self._client_id = f"{settings.kafka_topic_prefix}{bus.service}-outbox"
        self._send_timeout_s = send_timeout_s or settings.event_send_timeout_s
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._spool_linger_s = spool_linger_s
        self._send_linger_s = send_linger_s
        self._clock_skew_ms = int(clock_skew_s * 1000)
        self._scan_timeout_s = scan_timeout_s
        self._tracer = trace.get_tracer("llmops.bus.outbox", tracer_provider=bus.tracer_provider)
        self._metrics = bus.metrics
        self._service = bus.service
        self._queued_gauge = bus.metrics.events_queued.labels(bus.service)

        self._queue: deque[_Submitted] = deque()
        self._in_flight = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._producer: AIOKafkaProducer | None = None
        self._closing_sessions: set[asyncio.Task[None]] = set()
        self._verified = False  # tried events checked against the topics this session
        self._retry_delay_s = retry_min_s
        self._next_connect = 0.0
        self._outage_since: float | None = None

    @classmethod
    def from_settings(cls, bus: EventBus, **options: Any) -> EventOutbox:
        """An outbox whose spool lives where the service's settings say."""
        settings = bus.settings
        spool = EventSpool(settings.spool_path, max_bytes=settings.event_spool_max_bytes)
        return cls(bus, spool, **options)

    # -- the caller's side ----------------------------------------------------------------

    def submit(self, event: Envelope[Any]) -> None:
        """Queue `event` for Kafka and return at once; never waits, never raises for Kafka.

        No I/O happens here. Encoding and schema validation run in the background (an
        invalid event is logged and counted as dropped, as is one that finds the queue
        full). The current trace context travels with the event, so its consumers join
        the caller's trace. Raises only for a caller's bug: an event type no topic
        carries (LookupError), or an outbox not running (OutboxClosedError).
        """
        if self._closing or self._task is None:
            msg = "the outbox is not running: submit between start() and stop()"
            raise OutboxClosedError(msg)
        topic = self._bus.topic_name(self._bus.contract_for(event).topic)
        if len(self._queue) >= self._queue_size:
            self._drop(1, "queue_full", event_id=event.id)
            return
        self._queue.append(_Submitted(event, topic, caller_headers()))
        self._wakeup.set()

    @property
    def queued(self) -> int:
        """Events in memory, not yet sent or spooled."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Events taken from the queue and not yet acknowledged, dropped or spooled."""
        return self._in_flight

    @property
    def spooled(self) -> int:
        """Events on disk waiting for Kafka."""
        return self._spool.pending_events

    @property
    def connected(self) -> bool:
        """Whether a producer session is up (Kafka answered its last send)."""
        return self._producer is not None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool (it may hold events from before a restart) and start sending."""
        if self._task is not None:
            return
        await asyncio.to_thread(self._spool.open)
        self._update_gauges()
        self._task = asyncio.create_task(self._run(), name=f"{self._service}-outbox")

    async def stop(self) -> None:
        """Send what is queued if Kafka answers, spool the rest, then close. Loses nothing."""
        if self._task is None or self._closing:
            return
        self._closing = True
        self._wakeup.set()
        try:
            await self._task
        finally:
            await asyncio.to_thread(self._spool.close)

    # -- the background task --------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if self._closing:
                    await self._shut_down()
                    return
                await self._step()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                await self._survive("a cancellation leaked out of the Kafka client")
            except Exception:
                await self._survive("outbox step failed")

    async def _survive(self, what: str) -> None:
        """The task must outlive any surprise: events keep queueing behind it."""
        _log.exception(f"{what}; retrying")
        if self._in_flight:  # taken by the failed step, neither sent nor spooled
            self._drop(self._in_flight, "error")
            self._in_flight = 0
        await self._lose_session(what)
        await asyncio.sleep(self._retry_min_s)

    async def _step(self) -> None:
        if self._producer is None and time.monotonic() >= self._next_connect:
            await self._connect()
        if self._producer is not None and self._spool.is_empty():
            if self._queue:
                if len(self._queue) < self._batch_size and self._send_linger_s:
                    # Events come one per request; a produce request costs about as much
                    # for one event as for many, so the next few ms of them go together.
                    await asyncio.sleep(self._send_linger_s)
                await self._send_direct(self._take())
                self._in_flight = 0
            else:
                await self._wait_for_work(None)
            return
        # Kafka is unreachable, or the spool is still being drained: the queue goes to
        # disk behind what is already there, so events keep their order.
        if self._queue:
            if len(self._queue) < self._batch_size:
                await asyncio.sleep(self._spool_linger_s)  # group commits: fewer fsyncs
            while self._queue:
                await self._store(self._encode(self._take()), tried_since_ms=None)
                self._in_flight = 0
        if self._producer is not None:
            await self._drain_step()
        else:
            await self._wait_for_work(max(0.0, self._next_connect - time.monotonic()))

    async def _wait_for_work(self, timeout_s: float | None) -> None:
        self._wakeup.clear()
        if self._queue or self._closing:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout_s)

    def _take(self) -> list[_Submitted]:
        # Each step waits for its acknowledgements, a few event-loop turns under load, so
        # a backlog is taken in bigger steps (up to `batch_size`): the outbox keeps up
        # with its callers instead of falling further behind them.
        self._queued_gauge.set(len(self._queue))
        count = min(len(self._queue), self._batch_size)
        self._in_flight = count  # until the step that took them settles them
        return [self._queue.popleft() for _ in range(count)]

    # -- sending --------------------------------------------------------------------------

    async def _send_direct(self, items: list[_Submitted]) -> None:
        events = self._encode(items)
        if not events:
            return
        tried_since_ms = _now_ms()
        outcome = await self._send(events, via="direct")
        if outcome.session_failed:
            unsettled = [events[position] for position in outcome.unsettled]
            await self._store(unsettled, tried_since_ms=tried_since_ms)
            await self._lose_session(_reason(outcome))

    async def _drain_step(self) -> None:
        if not self._verified:
            try:
                await self._skip_already_delivered()
            except Exception as exc:  # Kafka went away again: nothing is resent unchecked
                await self._lose_session(f"cannot check the topics: {exc!r}")
                return
            self._verified = True
        segment = await asyncio.to_thread(self._spool.head)
        self._update_gauges()
        if segment is None:
            if self._outage_since is not None:
                _log.info(
                    "event spool drained; sending directly again",
                    outage_s=round(time.monotonic() - self._outage_since, 1),
                )
                self._outage_since = None
            return
        if segment.tried_since_ms is None:
            await asyncio.to_thread(self._spool.mark_tried, segment.seq, _now_ms())
        events = [event for _, event in segment.events]
        outcome = await self._send(events, via="spool")
        settled = outcome.acked + [position for position, _ in outcome.rejected]
        await asyncio.to_thread(
            self._spool.ack, segment.seq, [segment.events[position][0] for position in settled]
        )
        self._update_gauges()
        if outcome.session_failed:
            await self._lose_session(_reason(outcome))

    async def _send(self, events: Sequence[SpooledEvent], *, via: str) -> SendOutcome:
        assert self._producer is not None
        links = [link_to(event.headers) for event in events[:_MAX_LINKS]]
        with self._tracer.start_as_current_span(
            "outbox publish",
            kind=SpanKind.PRODUCER,
            links=[link for link in links if link is not None],
            attributes={
                "messaging.system": "kafka",
                "messaging.operation": "publish",
                "messaging.batch.message_count": len(events),
                "llmops.outbox.via": via,
            },
        ):
            outcome = await send_batch(self._producer, events, timeout_s=self._send_timeout_s)
        self._delivered(Counter(events[position].topic for position in outcome.acked), via)
        for position, exc in outcome.rejected:
            event = events[position]
            _log.error(
                "Kafka refused an event for good; dropped",
                event_id=event.event_id,
                topic=event.topic,
                error=repr(exc),
            )
            self._drop(1, "rejected")
        return outcome

    async def _skip_already_delivered(self) -> None:
        """Before resending events a lost session had taken, drop those already on the topic."""
        segments = await asyncio.to_thread(self._spool.tried)
        tried = [segment for segment in segments if segment.events]
        if not tried:
            return
        assert self._producer is not None
        since_ms = min(segment.tried_since_ms or 0 for segment in tried) - self._clock_skew_ms
        by_digest = _by_digest(tried)
        topics = {event.topic for segment in tried for _, event in segment.events}
        partitions = [
            TopicPartition(topic, partition)
            for topic in sorted(topics)
            for partition in sorted(await self._producer.partitions_for(topic))
        ]
        found = await find_on_topics(
            self._bootstrap,
            f"{self._client_id}-check",
            partitions,
            by_digest,
            since_ms=since_ms,
            timeout_s=self._scan_timeout_s,
        )
        acked: dict[int, list[int]] = {}
        on_topics: Counter[str] = Counter()
        for digest in found:
            for seq, index, topic in by_digest[digest]:
                acked.setdefault(seq, []).append(index)
                on_topics[topic] += 1
        self._delivered(on_topics, "found")
        for seq, indexes in acked.items():
            await asyncio.to_thread(self._spool.ack, seq, indexes)
        self._update_gauges()
        if found:
            _log.info(
                "events of an interrupted send were already on the topic; not sent again",
                events=sum(len(indexes) for indexes in acked.values()),
            )

    # -- sessions -------------------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            self._producer = await start_producer(
                self._bootstrap, self._client_id, timeout_s=self._send_timeout_s
            )
        except Exception as exc:
            self._schedule_reconnect()
            self._note_outage(f"cannot connect: {exc!r}")
            return
        self._verified = False
        self._retry_delay_s = self._retry_min_s
        if self._outage_since is not None or not self._spool.is_empty():
            _log.info("Kafka is reachable; draining the event spool", spooled=self.spooled)

    async def _lose_session(self, reason: str) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            # Closing may wait for a request already on the wire; the outbox need not.
            self._closing_sessions.add(close_producer(producer, grace_s=2 * self._send_timeout_s))
            self._closing_sessions = {t for t in self._closing_sessions if not t.done()}
            self._note_outage(reason)
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        self._next_connect = time.monotonic() + self._retry_delay_s
        self._retry_delay_s = min(self._retry_delay_s * 2, self._retry_max_s)

    def _note_outage(self, reason: str) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            _log.warning("Kafka is unreachable; events go to the on-disk spool", reason=reason)

    async def _shut_down(self) -> None:
        if self._queue and self._producer is None and self._spool.is_empty():
            await self._connect()  # one bounded attempt: Kafka beats the disk when it answers
        while self._queue:
            if self._producer is not None and self._spool.is_empty():
                await self._send_direct(self._take())
            else:
                await self._store(self._encode(self._take()), tried_since_ms=None)
            self._in_flight = 0
        producer, self._producer = self._producer, None
        if producer is not None:
            self._closing_sessions.add(close_producer(producer, grace_s=2 * self._send_timeout_s))
        if self._closing_sessions:
            _, late = await asyncio.wait(self._closing_sessions, timeout=5 * self._send_timeout_s)
            for task in late:
                task.cancel()
        if not self._spool.is_empty():
            _log.warning(
                "outbox stopped with events in the spool; they are sent after the next start",
                spooled=self.spooled,
                path=str(self._spool.path),
            )

    # -- spool and encoding ---------------------------------------------------------------

    def _encode(self, items: list[_Submitted]) -> list[SpooledEvent]:
        events = []
        for item in items:
            try:
                encoded = self._bus.encode(item.event)
            except EventEncodeError as exc:
                self._drop(1, "invalid", event_id=item.event.id, error=str(exc))
                continue
            headers = {**encoded.headers, **item.trace_headers}
            events.append(
                SpooledEvent(item.event.id, item.topic, encoded.key, encoded.value, headers)
            )
        return events

    async def _store(self, events: list[SpooledEvent], *, tried_since_ms: int | None) -> None:
        if not events:
            return
        try:
            result = await asyncio.to_thread(
                self._spool.append, events, tried_since_ms=tried_since_ms
            )
        except OSError as exc:
            _log.error("cannot write the event spool; events dropped", error=repr(exc))
            self._drop(len(events), "spool_error")
            return
        if result.refused:
            self._drop(
                result.refused,
                "spool_full",
                first_dropped=events[result.stored].event_id,
                max_bytes=self._spool.max_bytes,
            )
        self._update_gauges()

    # -- telemetry ------------------------------------------------------------------------

    def _delivered(self, by_topic: Counter[str], via: str) -> None:
        for topic, count in by_topic.items():
            name = topic.removeprefix(self._bus.settings.kafka_topic_prefix)
            self._metrics.events_delivered.labels(self._service, name, via).inc(count)
            self._metrics.events_published.labels(self._service, name).inc(count)

    def _drop(self, count: int, reason: str, **context: Any) -> None:
        self._metrics.events_dropped.labels(self._service, reason).inc(count)
        _log.error("events dropped", reason=reason, count=count, **context)

    def _update_gauges(self) -> None:
        self._metrics.events_spooled.labels(self._service).set(self._spool.pending_events)
        self._metrics.event_spool_bytes.labels(self._service).set(self._spool.size_bytes)
        lost = self._spool.take_lost_events()
        if lost:
            self._drop(lost, "corrupt")


def _by_digest(segments: list[SpoolSegment]) -> dict[bytes, list[tuple[int, int, str]]]:
    found: dict[bytes, list[tuple[int, int, str]]] = {}
    for segment in segments:
        for index, event in segment.events:
            digest = record_digest(event.key, event.value)
            found.setdefault(digest, []).append((segment.seq, index, event.topic))
    return found


def _reason(outcome: SendOutcome) -> str:
    if isinstance(outcome.error, TimeoutError):
        return "no acknowledgement in time"
    return repr(outcome.error) if outcome.error else "send failed"


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["EventOutbox", "OutboxClosedError"]
