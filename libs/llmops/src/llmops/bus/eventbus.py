"""The Kafka event bus every service uses: validated publish, reliable consume, DLQ.

Delivery follows DESIGN.md: producers use `acks=all` with idempotence; consumers commit
an offset only after the handler succeeded (at-least-once), retry a failing handler a
bounded number of times with exponential backoff, and send what cannot be handled to
`<topic>.dlq` with the reason in headers, then carry on with the next message.

Consumers poll records in batches and handle a batch's events concurrently, up to
`CONSUMER_CONCURRENCY` at a time, except that events with the same key (the same
subject, on the same partition) run one after the other in offset order. The batch is
committed when all of its events are handled or dead-lettered (ADR 0011).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from llmops.bus.tracing import processing, publishing
from llmops.events.base import P, Payload, TopicContract
from llmops.events.catalog import CONTRACTS
from llmops.events.codec import EncodedEvent, EventCodec, EventDecodeError
from llmops.events.envelope import Envelope, new_event
from llmops.settings import ServiceSettings
from llmops.telemetry.logs import bind_tenant, get_logger
from llmops.telemetry.metrics import ServiceMetrics

EventHandler = Callable[[Envelope[P]], Awaitable[None]]

DLQ_HEADERS = (
    "dlq-reason",
    "dlq-error-class",
    "dlq-error-message",
    "dlq-original-topic",
    "dlq-original-partition",
    "dlq-original-offset",
    "dlq-consumer-group",
    "dlq-attempts",
    "dlq-failed-at",
)

_log = get_logger(__name__)
_RECORDS_PER_SLOT = 4  # a poll takes up to this many records per concurrent slot
_POLL_TIMEOUT_MS = 50  # how long an idle consumer waits for records before polling again
SUBSCRIPTION_REFRESH_MS = 5_000
"""Metadata refresh of consumers that subscribe by topic name with aiokafka directly: a topic
that appears after they joined (or that the broker's metadata did not list yet) is
assigned within this time rather than at aiokafka's default of 5 minutes."""


class PermanentError(Exception):
    """A handler failure that retrying cannot fix: the event is dead-lettered at once."""


@dataclass(frozen=True)
class _Record:
    """One Kafka record, as the bus handles and dead-letters it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @classmethod
    def of(cls, record: ConsumerRecord[Any, Any]) -> _Record:
        """From an aiokafka `ConsumerRecord`; undecodable header bytes are replaced, and
        the codec then rejects the event with a reason instead of the poll failing."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            headers={name: value.decode(errors="replace") for name, value in record.headers},
        )


@dataclass(frozen=True)
class _Route:
    contract: TopicContract[Any]
    codec: EventCodec[Any]
    handler: EventHandler[Any]


class EventBus:
    """Publishes and consumes the platform's events over one FastStream Kafka broker."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        tracer_provider: TracerProvider,
        metrics: ServiceMetrics,
        contracts: Iterable[TopicContract[Any]] = CONTRACTS.values(),
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.tracer_provider = tracer_provider
        self.service = settings.service_name
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            client_id=f"{settings.kafka_topic_prefix}{self.service}",
            logger=logging.getLogger(f"llmops.bus.{self.service}"),
            graceful_timeout=15.0,
        )
        self._tracer = trace.get_tracer("llmops.bus", tracer_provider=tracer_provider)
        self._contracts = {contract.event_type: contract for contract in contracts}
        self._codecs: dict[str, EventCodec[Any]] = {}
        self._routes: dict[str, _Route] = {}
        self._consuming = False

    # -- naming -------------------------------------------------------------------------

    def topic_name(self, topic: str) -> str:
        """The Kafka topic for a catalog topic, with this deployment's prefix."""
        return f"{self.settings.kafka_topic_prefix}{topic}"

    def codec(self, contract: TopicContract[P]) -> EventCodec[P]:
        codec = self._codecs.get(contract.topic)
        if codec is None:
            codec = EventCodec(contract, self.settings.event_wire_format)
            self._codecs[contract.topic] = codec
        return codec

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._routes and not self._consuming:
            self._register_consumer()
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def ping(self, timeout: float = 2.0) -> bool:
        return bool(await self.broker.ping(timeout))

    # -- publishing -----------------------------------------------------------------------

    def contract_for(self, event: Envelope[Any]) -> TopicContract[Any]:
        """The contract of the topic that carries `event`; LookupError for an unknown type."""
        contract = self._contracts.get(event.type)
        if contract is None:
            msg = f"no topic carries events of type {event.type!r}"
            raise LookupError(msg)
        return contract

    def encode(self, event: Envelope[Any]) -> EncodedEvent:
        """Validate `event` against its topic's schema and serialize it for the wire."""
        return self.codec(self.contract_for(event)).encode(event)

    async def publish(self, event: Envelope[Any]) -> None:
        """Validate and send an event to its topic, keyed by its subject.

        This awaits the broker; request paths use `EventOutbox.submit`, which never waits.
        """
        contract = self.contract_for(event)
        encoded = self.codec(contract).encode(event)
        topic = self.topic_name(contract.topic)
        headers = dict(encoded.headers)
        with publishing(self._tracer, topic, event.id, headers):
            await self.broker.publish(encoded.value, topic, key=encoded.key, headers=headers)
        self.metrics.events_published.labels(self.service, contract.topic).inc()

    async def emit(
        self,
        contract: TopicContract[P],
        data: P,
        *,
        tenant: str,
        subject: str,
        event_id: str | None = None,
    ) -> Envelope[P]:
        """Wrap `data` in an envelope from this service and publish it."""
        event = new_event(
            contract, data, source=self.service, tenant=tenant, subject=subject, event_id=event_id
        )
        await self.publish(event)
        return event

    # -- consuming ------------------------------------------------------------------------

    def subscribe(self, contract: TopicContract[P], handler: EventHandler[P]) -> None:
        """Run `handler` for every event on the contract's topic, in this service's group.

        Register before `start()`. The handler must be idempotent: after a crash an
        event whose offset was not yet committed is delivered again.
        """
        if self._consuming:
            msg = "subscribe() before start(): the consumer is already running"
            raise RuntimeError(msg)
        name = self.topic_name(contract.topic)
        if name in self._routes:
            msg = f"{contract.topic} already has a handler in {self.service}"
            raise ValueError(msg)
        self._routes[name] = _Route(contract, self.codec(contract), handler)

    def _register_consumer(self) -> None:
        """One consumer for all subscribed topics: one group member, one rebalance per join.

        (A consumer per topic in one group would rebalance the group once per member.)
        """
        group = self.settings.consumer_group

        async def consume(message: KafkaMessage) -> None:
            polled = message.raw_message
            records = polled if isinstance(polled, tuple) else (polled,)
            await self._handle([_Record.of(record) for record in records], group)

        consume.__name__ = consume.__qualname__ = f"{self.service}_consumer"
        self.broker.subscriber(
            *self._routes,
            group_id=group,
            batch=True,
            max_records=self.settings.consumer_concurrency * _RECORDS_PER_SLOT,
            batch_timeout_ms=_POLL_TIMEOUT_MS,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            decoder=_undecoded,
        )(consume)
        self._consuming = True

    async def _handle(self, records: list[_Record], group: str) -> None:
        """Handle a polled batch: different keys concurrently, each key's events in order.

        Returns once every event is handled or dead-lettered, and the batch is committed.
        Raises, so that nothing is committed and the batch is polled again (its handled
        events are delivered twice: handlers are idempotent), only when an event could
        not even be dead-lettered.
        """
        in_order: dict[tuple[str, int, bytes | None], list[_Record]] = {}
        for record in records:
            in_order.setdefault((record.topic, record.partition, record.key), []).append(record)
        slots = asyncio.Semaphore(self.settings.consumer_concurrency)

        async def deliver_in_order(sequence: list[_Record]) -> None:
            async with slots:
                for record in sequence:
                    await self._deliver(record, group)

        outcomes = await asyncio.gather(
            *(deliver_in_order(sequence) for sequence in in_order.values()),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _deliver(self, record: _Record, group: str) -> None:
        route = self._routes[record.topic]
        with processing(
            self._tracer,
            record.topic,
            record.headers,
            partition=record.partition,
            offset=record.offset,
            group=group,
        ):
            await self._deliver_traced(route, record, group)

    async def _deliver_traced(self, route: _Route, record: _Record, group: str) -> None:
        contract, handler = route.contract, route.handler
        try:
            event = route.codec.decode(record.value, record.headers)
        except EventDecodeError as exc:
            await self._dead_letter(contract, record, group, exc, reason="invalid", attempts=0)
            return
        bind_tenant(event.tenant)
        max_attempts = self.settings.consumer_max_retries + 1
        for attempt in range(1, max_attempts + 1):
            try:
                await handler(event)
            except PermanentError as exc:
                await self._dead_letter(
                    contract, record, group, exc, reason="rejected", attempts=attempt
                )
                return
            except Exception as exc:
                if attempt == max_attempts:
                    await self._dead_letter(
                        contract, record, group, exc, reason="failed", attempts=attempt
                    )
                    return
                self.metrics.handler_retries.labels(self.service, contract.topic).inc()
                delay = self.settings.consumer_retry_backoff_s * 2 ** (attempt - 1)
                _log.warning(
                    "handler failed, retrying",
                    topic=contract.topic,
                    event_id=event.id,
                    attempt=attempt,
                    retry_in_s=delay,
                    error=repr(exc),
                )
                await asyncio.sleep(delay)
            else:
                self.metrics.events_consumed.labels(self.service, contract.topic).inc()
                return

    async def dead_letter_record(
        self,
        contract: TopicContract[Any],
        record: ConsumerRecord[Any, Any],
        *,
        group: str,
        error: Exception,
        reason: str = "invalid",
        attempts: int = 0,
    ) -> None:
        """Dead-letter a record a consumer of its own polled (one not subscribed on the bus)."""
        await self._dead_letter(
            contract, _Record.of(record), group, error, reason=reason, attempts=attempts
        )

    async def _dead_letter(
        self,
        contract: TopicContract[Any],
        record: _Record,
        group: str,
        error: Exception,
        *,
        reason: str,
        attempts: int,
    ) -> None:
        """Send the original bytes to `<topic>.dlq` with why; raising here means no commit."""
        headers = record.headers | dead_letter_headers(
            error,
            reason=reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            group=group,
            attempts=attempts,
        )
        await self.broker.publish(
            record.value,
            self.topic_name(contract.dlq),
            key=record.key,
            headers=headers,
        )
        self.metrics.dead_lettered.labels(self.service, contract.topic, reason).inc()
        _log.error(
            "event dead-lettered",
            topic=record.topic,
            offset=record.offset,
            reason=reason,
            error=repr(error),
        )


async def _undecoded(message: KafkaMessage) -> bytes:
    """Keep FastStream from parsing the body: the codec decodes, so bad input is dead-lettered."""
    return message.body


def dead_letter_headers(
    error: Exception,
    *,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    group: str,
    attempts: int,
) -> dict[str, str]:
    """Headers that tell an operator why a message is in the DLQ and where it came from."""
    values = (
        reason,
        type(error).__qualname__,
        str(error)[:2000],
        topic,
        str(partition),
        str(offset),
        group,
        str(attempts),
        datetime.now(UTC).isoformat(),
    )
    return dict(zip(DLQ_HEADERS, values, strict=True))


__all__ = [
    "DLQ_HEADERS",
    "SUBSCRIPTION_REFRESH_MS",
    "EventBus",
    "EventHandler",
    "Payload",
    "PermanentError",
]
