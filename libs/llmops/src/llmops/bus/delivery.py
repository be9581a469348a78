"""Kafka mechanics of the outbox: producer sessions with bounded waits, and the log scan.

aiokafka waits without limit in the two places an outbox cannot afford it: a send to an
unreachable broker is retried forever, and `stop()` then waits for it forever
(aio-libs/aiokafka#1101). Everything here is therefore bounded by the caller's timeout,
and a session that stops answering is aborted rather than stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)

from llmops.bus.spool import SpooledEvent
from llmops.telemetry.logs import get_logger

_log = get_logger(__name__)

# Errors that say the record itself can never be written: it is dropped, not retried.
# (CorruptRecordException is not here: a damaged request can come from the network.)
POISON_ERRORS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)
_MAX_BATCH_BYTES = 512 * 1024  # under the broker's default message.max.bytes (1 MiB)


@dataclass
class SendOutcome:
    """What became of a batch, by position in it."""

    acked: list[int] = field(default_factory=list)
    rejected: list[tuple[int, BaseException]] = field(default_factory=list)
    # Handed to the producer without an acknowledgement (may be on the topic), or never
    # handed because the session failed first: both wait in the spool.
    unsettled: list[int] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def session_failed(self) -> bool:
        """The producer session can no longer be trusted (its sequence state is unknown)."""
        return bool(self.unsettled) or self.error is not None


def new_producer(
    bootstrap_servers: str, client_id: str, *, request_timeout_s: float
) -> AIOKafkaProducer:
    """An idempotent producer with `acks=all`: within one session retries never duplicate.

    `request_timeout_s` bounds one request to the broker, and so how long an abandoned
    session can take to close.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        max_batch_size=_MAX_BATCH_BYTES,
        request_timeout_ms=int(request_timeout_s * 1000),
    )


async def start_producer(
    bootstrap_servers: str, client_id: str, *, timeout_s: float
) -> AIOKafkaProducer:
    """Connect a new producer session, or raise within `timeout_s` when Kafka does not answer."""
    producer = new_producer(bootstrap_servers, client_id, request_timeout_s=2 * timeout_s)
    try:
        await asyncio.wait_for(producer.start(), timeout_s)
    except BaseException:
        await asyncio.wait({close_producer(producer, grace_s=timeout_s)}, timeout=3 * timeout_s)
        raise
    return producer


def close_producer(producer: AIOKafkaProducer, *, grace_s: float) -> asyncio.Task[None]:
    """End a producer session whatever it still holds; the closing runs in a task.

    aiokafka's `stop()` waits for unacknowledged sends without limit while the broker is
    unreachable (aio-libs/aiokafka#1101), and there is no abort. So the session's sender
    task is cancelled instead (it lets the request already on the wire finish, which the
    request timeout bounds; `grace_s` at most) and its connections closed. Sends still
    pending are never resolved: the outbox already counted them as unsettled.
    """
    return asyncio.create_task(_abort(producer, grace_s), name="outbox-producer-close")


async def _abort(producer: AIOKafkaProducer, grace_s: float) -> None:
    # aiokafka's sender task is private; cancelling it is what `stop()` does after flushing.
    sender_task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    try:
        if sender_task is None:  # never started: nothing is pending, stop() is safe
            await asyncio.wait_for(producer.stop(), grace_s)
            return
        if not sender_task.done():
            sender_task.cancel()
            await asyncio.wait({sender_task}, timeout=grace_s)
        if not sender_task.done():
            sender_task.cancel()  # a second cancel interrupts the request on the wire
            await asyncio.wait({sender_task}, timeout=grace_s)
        await asyncio.wait_for(producer.client.close(), grace_s)
    except Exception as exc:
        _log.debug("producer session closed with an error", error=repr(exc))
    finally:
        producer._closed = True  # what stop() records; its pending sends stay unresolved


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a send's failure as seen: the outcome is read from the future, not raised."""
    if not future.cancelled():
        future.exception()


async def send_batch(
    producer: AIOKafkaProducer, events: Sequence[SpooledEvent], *, timeout_s: float
) -> SendOutcome:
    """Hand `events` to the producer in order and wait up to `timeout_s` for every ack.

    Never raises for Kafka trouble: the outcome says which events were acknowledged,
    which the broker refused for good, and which are unsettled.

    The hand-off does not yield to the event loop (about 20 µs per event; encoding the
    batch already took longer in one go): under load every yield waits for a whole turn
    of the loop, and yielding every few events let a saturated gateway's outbox fall
    behind its requests without bound (bench/README.md, 2026-11-24).
    """
    outcome = SendOutcome()
    handed: list[tuple[int, asyncio.Future[Any]]] = []
    try:
        async with asyncio.timeout(timeout_s):
            for position, event in enumerate(events):
                try:
                    future = await producer.send(
                        event.topic,
                        event.value,
                        key=event.key,
                        headers=[(name, value.encode()) for name, value in event.headers.items()],
                    )
                except POISON_ERRORS as exc:  # raised before the record joined a batch
                    outcome.rejected.append((position, exc))
                    continue
                future.add_done_callback(_retrieve)
                handed.append((position, future))
            if handed:
                await asyncio.wait([future for _, future in handed])
    except TimeoutError as exc:
        outcome.error = exc
    except KafkaError as exc:  # no metadata for the topic, a dead sender, a closed producer
        outcome.error = exc
    settled = {position for position, _ in outcome.rejected}
    for position, future in handed:
        if not future.done() or future.cancelled():
            continue
        failure = future.exception()
        if failure is None:
            outcome.acked.append(position)
            settled.add(position)
        elif isinstance(failure, POISON_ERRORS):
            # The broker refused the batch; the producer's sequence numbers moved on without
            # it, so this session must not be used again (the error marks it failed).
            outcome.rejected.append((position, failure))
            outcome.error = outcome.error or failure
            settled.add(position)
    outcome.unsettled = [position for position in range(len(events)) if position not in settled]
    return outcome


def record_digest(key: bytes | None, value: bytes | None) -> bytes:
    """Identity of a record's bytes: an event sent twice has the same key and value."""
    key, value = key or b"", value or b""
    return hashlib.blake2b(len(key).to_bytes(4, "big") + key + value, digest_size=16).digest()


async def find_on_topics(
    bootstrap_servers: str,
    client_id: str,
    partitions: Collection[TopicPartition],
    digests: Collection[bytes],
    *,
    since_ms: int,
    timeout_s: float,
) -> set[bytes]:
    """Which of `digests` are in `partitions` among the records timestamped from `since_ms`.

    A record's timestamp is set when a producer takes it, so a send that started at
    `since_ms` (less clock skew, which the caller subtracts) can only have landed at or
    after the offset Kafka's time index gives for `since_ms`; the scan reads from there
    to the end of each partition. Raises TimeoutError rather than answer partially.
    """
    wanted = set(digests)
    found: set[bytes] = set()
    if not wanted or not partitions:
        return found
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    started = time.monotonic()
    scanned = 0
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            ranges = await _ranges_since(consumer, partitions, since_ms)
            if ranges:
                consumer.assign(list(ranges))
                for tp, (start, _) in ranges.items():
                    consumer.seek(tp, start)
            remaining = set(ranges)
            while remaining and found != wanted:
                batch = await consumer.getmany(*remaining, timeout_ms=500)
                for tp, records in batch.items():
                    end = ranges[tp][1]
                    for record in records:
                        if record.offset >= end:
                            break
                        scanned += 1
                        digest = record_digest(record.key, record.value)
                        if digest in wanted:
                            found.add(digest)
                for tp in list(remaining):
                    # Transaction markers and compaction leave offsets no record has.
                    if await consumer.position(tp) >= ranges[tp][1]:
                        remaining.discard(tp)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), timeout_s)
    _log.info(
        "outbox looked for interrupted sends on the topics",
        partitions=len(partitions),
        records_scanned=scanned,
        looked_for=len(wanted),
        found=len(found),
        seconds=round(time.monotonic() - started, 3),
    )
    return found


async def _ranges_since(
    consumer: AIOKafkaConsumer, partitions: Collection[TopicPartition], since_ms: int
) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition: the first offset timestamped at or after `since_ms`, and the end offset."""
    starts = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
    ends = await consumer.end_offsets(list(partitions))
    return {
        tp: (start.offset, ends[tp])
        for tp, start in starts.items()
        if start is not None and start.offset < ends[tp]
    }


__all__ = [
    "POISON_ERRORS",
    "SendOutcome",
    "close_producer",
    "find_on_topics",
    "new_producer",
    "record_digest",
    "send_batch",
    "start_producer",
]
