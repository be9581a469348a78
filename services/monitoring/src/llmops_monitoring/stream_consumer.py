"""The monitoring consumer: every topic, folded into minute rollups per partition, flushed
exactly once.

It does not use the bus's per-event path: at tens of thousands of completions a second
a span, a task and a full validation per event would cost several times the folding.
It polls batches with its own aiokafka consumer in the service's group, folds each
record into its partition's `RollupBook`, and every `flush_interval_s` writes each
partition's deltas as one `Flush` (see `rollup_store`), then commits the Kafka offset
for lag tools. The flush documents, not Kafka, say where a partition resumes.

Duplicates a producer sent twice (the same envelope id) are dropped while their first
copy is among the last `dedupe_window` ids this process saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from llmops.bus import EventBus
from llmops.bus.eventbus import SUBSCRIPTION_REFRESH_MS
from llmops.events.catalog import CONTRACTS, Topic
from llmops.events.codec import CONTENT_TYPE, EventDecodeError
from llmops.telemetry import get_logger
from llmops_monitoring.completion_batches import (
    BatchFold,
    RecentIds,
    cell_key_text,
    fold_completions,
)
from llmops_monitoring.drift_samples import DriftSampleStore
from llmops_monitoring.live_metrics import LiveMetrics
from llmops_monitoring.rollup_store import Flush, RollupStore, SourcePartition
from llmops_monitoring.rollups import RollupBook, Window, with_coarser_windows
from llmops_monitoring.settings import MonitoringSettings
from llmops_monitoring.stream_facts import (
    DriftSample,
    UnreadableEvent,
    completion_from_event,
    completion_from_json,
    feedback_score,
    ingest_outcome,
    online_scores,
    sampled,
)

_log = get_logger(__name__)
_JSON = "application/json"
_JSON_FIRST = (CONTENT_TYPE, _JSON.encode())
_MAX_RECORDS = 20_000
_FOLDS_IN_FLIGHT = 4
"""Polled completion batches that may wait for the worker thread before the poll waits."""
_SAMPLE_CELLS = 100_000
"""Cells whose drift samples are counted before the counts start again."""
COMPACTED_HISTORY = timedelta(days=2)
"""Windows this recent are compacted; deltas of older ones (very late events) stay as they
are, which queries merge all the same."""


class Assignment:
    """A partition from its assignment to this process until its revocation: the folds of
    one assignment share it, and polled records are bound to it."""

    def __init__(self, resume: int) -> None:
        self.next_offset = resume
        """Where the next polled records go on from: those before it are folded or on
        their way through the worker."""


@dataclass
class CompletionBatch:
    """A partition's polled records; for `llm.completions`, on their way through the worker."""

    tp: TopicPartition
    assignment: Assignment
    """Which assignment of the partition polled them: a later one reads them again."""
    records: list[Any]
    json_records: list[Any] = field(default_factory=list)
    other_records: list[Any] = field(default_factory=list)
    folded: BatchFold = field(default_factory=BatchFold)


@dataclass
class PartitionFold:
    """What a partition folded since its last flush."""

    source: SourcePartition
    assignment: Assignment
    start: int
    end: int
    book: RollupBook = field(default_factory=lambda: RollupBook((Window.MINUTE,)))
    samples: list[DriftSample] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.end > self.start


class StreamMonitor:
    """Consumes every catalog topic and keeps the rollups; start, then stop at shutdown."""

    def __init__(
        self,
        settings: MonitoringSettings,
        *,
        bus: EventBus,
        store: RollupStore,
        samples: DriftSampleStore,
        live: LiveMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._bus = bus
        self._store = store
        self._samples = samples
        self._live = live
        self._clock = clock
        self._topics = {bus.topic_name(topic): Topic(topic) for topic in Topic}
        self._folds: dict[TopicPartition, PartitionFold] = {}
        self._rebalancing = asyncio.Lock()
        self._recent = RecentIds(settings.dedupe_window)  # completions (the worker's)
        self._recent_others = RecentIds(settings.dedupe_window)  # the other topics
        self._consumer: AIOKafkaConsumer | None = None
        self._folder = ThreadPoolExecutor(1, thread_name_prefix="rollup-fold")
        self._task: asyncio.Task[None] | None = None
        self._writing: dict[TopicPartition, asyncio.Task[None]] = {}
        self._unwritten: dict[TopicPartition, list[PartitionFold]] = {}
        self._compact_due: dict[TopicPartition, float] = {}
        self._samples_taken: dict[str, int] = {}
        self._sample_limit = settings.drift_samples_per_minute

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.settings.consumer_group,
            client_id=f"{self.settings.consumer_group}-rollups",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A topic created after the subscription is joined within seconds, not at the
            # default 5-minute metadata refresh.
            metadata_max_age_ms=SUBSCRIPTION_REFRESH_MS,
            max_poll_records=_MAX_RECORDS,
            fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await consumer.start()
        consumer.subscribe(topics=list(self._topics), listener=_Rebalance(self))
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="monitoring-rollups")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._flush_all(wait=True)
            await self._consumer.stop()
        self._folder.shutdown(wait=False)

    @property
    def partitions(self) -> list[SourcePartition]:
        """Partitions this process consumes now."""
        return [fold.source for fold in self._folds.values()]

    async def check(self) -> None:
        """Health: the consuming task is alive."""
        if self._task is None or self._task.done():
            raise RuntimeError("the rollup consumer is not running")

    # ---- consuming ----------------------------------------------------------------------

    async def _run(self) -> None:
        """Poll, fold, flush. Completion batches fold in one worker thread, in order, while
        the event loop polls and unpacks the next ones; up to `_FOLDS_IN_FLIGHT` batches wait
        there, and each is settled in order, so partitions advance in offset order.

        Rebalances wait while a poll is handled (`_rebalancing`), so nothing is folded into
        a partition after it was revoked; batches still in the worker then are dropped at
        settling if their partition was revoked, and read again by its new assignment."""
        assert self._consumer is not None
        last_flush = self._clock()
        folding: deque[asyncio.Future[list[CompletionBatch]]] = deque()
        loop = asyncio.get_running_loop()
        try:
            while True:
                polled = await self._consumer.getmany(timeout_ms=200, max_records=_MAX_RECORDS)
                cut = self._cut(polled)  # before anything awaits: the assignments of the poll
                async with self._rebalancing:
                    while folding and (folding[0].done() or len(folding) >= _FOLDS_IN_FLIGHT):
                        await self._settle(await folding.popleft())
                    batches: list[CompletionBatch] = []
                    for batch in cut:
                        fold = self._folds.get(batch.tp)
                        if fold is None or fold.assignment is not batch.assignment:
                            continue  # revoked since the poll: read again where it resumes
                        if Topic(fold.source.topic) is Topic.LLM_COMPLETIONS:
                            batches.append(batch)
                        else:
                            await self._fold_others(fold, batch.records)
                    if batches:
                        folding.append(
                            loop.run_in_executor(self._folder, self._fold_batches, batches)
                        )
                    # Under load every flush_interval_s; when caught up at once, so what was
                    # folded is stored (and queryable) without waiting for the interval.
                    idle = not polled and not folding
                    if idle or self._clock() - last_flush >= self.settings.flush_interval_s:
                        await self._flush_all()
                        last_flush = self._clock()
        finally:
            with contextlib.suppress(Exception):
                while folding:
                    await self._settle(await folding.popleft())

    def _cut(self, polled: dict[TopicPartition, list[Any]]) -> list[CompletionBatch]:
        """The polled records of each partition this process owns, bound to its assignment;
        records before its `next_offset` (on their way already) are left out."""
        cut = []
        for tp, records in polled.items():
            fold = self._folds.get(tp)
            if fold is None:  # revoked while polling
                continue
            assignment = fold.assignment
            if records[0].offset < assignment.next_offset:
                records = [r for r in records if r.offset >= assignment.next_offset]
                if not records:
                    continue
            assignment.next_offset = records[-1].offset + 1
            cut.append(CompletionBatch(tp, assignment, records))
        return cut

    async def _fold_others(self, fold: PartitionFold, records: list[Any]) -> None:
        topic = Topic(fold.source.topic)
        for record in records:
            await self._fold_other(fold, topic, record)
        fold.end = records[-1].offset + 1
        self._live.consumed(topic.value, len(records))

    def _fold_batches(self, batches: list[CompletionBatch]) -> list[CompletionBatch]:
        """In the worker thread: the columnar fold of each partition's JSON records."""
        for batch in batches:
            batch.json_records = [r for r in batch.records if _content_type(r.headers) == _JSON]
            if len(batch.json_records) < len(batch.records):
                batch.other_records = [
                    r for r in batch.records if _content_type(r.headers) != _JSON
                ]
            values = [record.value or b"" for record in batch.json_records]
            batch.folded = fold_completions(values, self._recent, self._sample_limit)
        return batches

    async def _settle(self, batches: list[CompletionBatch]) -> None:
        """Add folded batches to their partitions' folds, and read what the columnar path
        left (other wire formats, records it refused) one by one."""
        for batch in batches:
            fold = self._folds.get(batch.tp)
            folded = batch.folded
            if fold is None or fold.assignment is not batch.assignment:
                # Revoked (and maybe assigned again) meanwhile: the records are read again
                # from where the partition resumes, and count then.
                self._recent.forget(folded.remembered)
                continue
            fold.book.absorb(folded.cells)
            for position, cell_key in folded.sample_candidates:
                record = batch.json_records[position]
                if self._samples_due(cell_key, record.key):
                    read = completion_from_json(record.value)
                    if read.sample is not None:
                        fold.samples.append(read.sample)
            leftovers = [batch.json_records[position] for position in folded.unread]
            leftovers += batch.other_records
            for record in leftovers:
                await self._fold_completion(fold, record)
            fold.end = batch.records[-1].offset + 1
            self._live.consumed(Topic.LLM_COMPLETIONS.value, len(batch.records))

    async def _fold_completion(self, fold: PartitionFold, record: Any) -> None:
        read = None
        if _content_type(record.headers) == _JSON:
            with contextlib.suppress(UnreadableEvent):
                read = completion_from_json(record.value)
        if read is None:
            event = await self._decode(Topic.LLM_COMPLETIONS, record)
            if event is None:
                return
            read = completion_from_event(event)
        if self._recent.seen(read.event_id):
            return
        fold.book.add_completion(read.facts)
        if read.sample is not None and self._samples_due(cell_key_text(read.facts), record.key):
            fold.samples.append(read.sample)

    def _samples_due(self, cell_key: str, subject: bytes | None) -> bool:
        """Whether a completion of this cell becomes a drift sample: hash-sampled at
        `drift_sample_rate`, at most `drift_samples_per_minute` per cell (minute, tenant,
        model, prompt, key) and among its first ones, so storage stays bounded whatever the
        traffic. A replay after a crash may keep a few more (stored once each)."""
        completion_id = (subject or b"").decode(errors="replace")
        if not sampled(completion_id, self.settings.drift_sample_rate):
            return False
        taken = self._samples_taken.get(cell_key, 0)
        if taken >= self._sample_limit:
            return False
        if len(self._samples_taken) > _SAMPLE_CELLS:
            self._samples_taken.clear()  # the cells of past minutes are done
        self._samples_taken[cell_key] = taken + 1
        return True

    async def _fold_other(self, fold: PartitionFold, topic: Topic, record: Any) -> None:
        event = await self._decode(topic, record)
        if event is None or self._recent_others.seen(event.id):
            return
        book = fold.book
        if topic is Topic.EVAL_RESULTS:
            scores = online_scores(event)
            if scores is not None:
                for metric, value in scores.scores:
                    book.add_score(
                        time=scores.time, dimensions=scores.dimensions, metric=metric, value=value
                    )
        elif topic is Topic.FEEDBACK_RECORDED:
            feedback = feedback_score(event)
            if feedback is not None:
                book.add_feedback(
                    time=feedback.time, dimensions=feedback.dimensions, score=feedback.score
                )
        elif topic is Topic.DOCS_INGEST_STATUS:
            ingest = ingest_outcome(event)
            if ingest is not None:
                book.add_ingest(
                    time=ingest.time,
                    tenant=ingest.tenant,
                    documents=ingest.documents,
                    failed=ingest.failed,
                )
        elif topic is Topic.DOCS_INDEXED:
            book.add_ingest(time=event.time, tenant=event.tenant, chunks=event.data.chunk_count)

    async def _decode(self, topic: Topic, record: Any) -> Any:
        """The validated event, or None after dead-lettering a record that is not one."""
        contract = CONTRACTS[topic]
        headers = {name: value.decode(errors="replace") for name, value in record.headers}
        try:
            return self._bus.codec(contract).decode(record.value or b"", headers)
        except EventDecodeError as exc:
            await self._bus.dead_letter_record(
                contract, record, group=self.settings.consumer_group, error=exc
            )
            return None

    # ---- flushing -----------------------------------------------------------------------

    async def _flush_all(self, *, wait: bool = False) -> None:
        """Start writing every partition's fold in the background; a partition whose last
        write still runs keeps folding and is written next time. `wait`: write all now."""
        for tp in list(self._folds):
            writing = self._writing.get(tp)
            if writing is not None and not writing.done():
                if not wait:
                    continue
                await asyncio.wait({writing})
            fold = self._folds.get(tp)
            if fold is None or not fold.pending:
                continue
            self._folds[tp] = PartitionFold(
                fold.source, fold.assignment, start=fold.end, end=fold.end
            )
            self._writing[tp] = asyncio.create_task(self._write(tp, fold), name="rollup-flush")
        if wait:
            await asyncio.gather(*self._writing.values(), return_exceptions=True)

    async def _write(self, tp: TopicPartition, fold: PartitionFold) -> None:
        """Write a fold, after any fold of the partition whose write failed (in order)."""
        pending = [*self._unwritten.pop(tp, []), fold]
        for position, current in enumerate(pending):
            try:
                await self._write_one(tp, current, retry=position < len(pending) - 1)
            except Exception as exc:
                # Kept, in order, for the next flush, which first undoes what this one
                # wrote (`recover`): nothing is lost and nothing is counted twice.
                self._unwritten[tp] = pending[position:]
                _log.warning(
                    "rollup flush failed; it is retried with the next one",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=current.start,
                    error=repr(exc),
                )
                return

    async def _write_one(self, tp: TopicPartition, fold: PartitionFold, *, retry: bool) -> None:
        started = time.monotonic()
        if retry:
            committed = await self._store.recover(fold.source)
            if committed is not None and committed >= fold.end:
                return  # the failed write had committed after all
        minute_cells = fold.book.cells()
        cells = with_coarser_windows(minute_cells, (Window.HOUR, Window.DAY))
        await self._samples.keep(fold.samples)
        await self._store.write(Flush(fold.source, fold.start, fold.end, cells))
        self._live.flushed(minute_cells)
        await self._commit(tp, fold.end)
        await self._compact_if_due(tp, fold.source, fold.end)
        _log.debug(
            "rollups flushed",
            topic=tp.topic,
            partition=tp.partition,
            events=fold.end - fold.start,
            cells=len(cells),
            seconds=round(time.monotonic() - started, 3),
        )

    async def _compact_if_due(self, tp: TopicPartition, source: SourcePartition, end: int) -> None:
        """Merge the partition's recent deltas now and then; it runs in the partition's write
        sequence, so never beside a write of it."""
        now, interval = self._clock(), self.settings.compact_interval_s
        if now < self._compact_due.setdefault(tp, now + interval):
            return
        self._compact_due[tp] = now + interval
        since = datetime.now(UTC) - COMPACTED_HISTORY
        deleted = await self._store.compact(source, end, since)
        _log.debug("rollups compacted", topic=tp.topic, partition=tp.partition, deleted=deleted)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        """Kafka's committed offset is for lag tools only: flushes say where to resume."""
        assert self._consumer is not None
        try:
            await self._consumer.commit({tp: offset})
        except KafkaError as exc:
            _log.warning("offset commit failed (lag only)", topic=tp.topic, error=repr(exc))

    # ---- rebalancing --------------------------------------------------------------------

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._rebalancing:
            await self._assign(assigned)

    async def _assign(self, assigned: set[TopicPartition]) -> None:
        assert self._consumer is not None
        for tp in assigned:
            source = SourcePartition(self._topics[tp.topic].value, tp.partition)
            resume = await self._store.recover(source)
            if resume is None:
                committed = await self._consumer.committed(tp)
                if committed is None:
                    beginning = await self._consumer.beginning_offsets([tp])
                    resume = beginning[tp]
                else:
                    resume = committed
            self._consumer.seek(tp, resume)
            self._folds[tp] = PartitionFold(source, Assignment(resume), start=resume, end=resume)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Write what was folded; what cannot be written is read again by the next owner."""
        async with self._rebalancing:
            await self._flush_all(wait=True)
            for tp in revoked:
                self._folds.pop(tp, None)
                self._writing.pop(tp, None)
                self._unwritten.pop(tp, None)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, monitor: StreamMonitor) -> None:
        self._monitor = monitor

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._monitor.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._monitor.on_assigned(assigned)


def _content_type(headers: Any) -> str:
    """A record's content type, from its headers."""
    if headers and headers[0] == _JSON_FIRST:  # how the platform's producers write it
        return _JSON
    for name, value in headers:
        if name == CONTENT_TYPE:
            return str(value.decode(errors="replace"))
    return _JSON


__all__ = ["Assignment", "CompletionBatch", "PartitionFold", "StreamMonitor"]
