"""The analysts' Parquet archive: events of chosen topics as files, partitioned by topic and day.

Layout (Hive-style, so DuckDB, pandas/pyarrow and Spark read `date` as a column):

    <archive_dir>/<topic>/date=YYYY-MM-DD/part-<partition>-<first offset>-<last offset>.parquet

`date` is the UTC day of the event's `time`; the offsets are the Kafka offsets of the
file's first and last row. Columns (`ArchiveTable`, derived from the topic's Avro schema,
so a field added to a schema becomes a column without a code change):

- envelope: `event_id`, `event_type`, `schema_version`, `source`, `time` (timestamp, UTC),
  `tenant`, `subject`, `trace_id` (the payload's own `trace_id` if it has one, else the
  trace of the `traceparent` header), `kafka_partition`, `kafka_offset`;
- payload scalars under their own names (enums as strings);
- a nested record field becomes one column per sub-field, `<field>_<sub>` (`prompt_name`,
  `error_code`), except `usage`, whose counters keep their names (`prompt_tokens`,
  `completion_tokens`, `total_tokens`);
- lists and maps stay nested Arrow types (`messages`, `retrieved_chunks`, `scores`: lists
  of structs; `tags`: list of strings; `details`: a map), which DuckDB queries with
  `unnest`, `list_*` functions and `map['key']`;
- a payload column whose name an envelope column already uses gets a `data_` prefix.

Exactly once across crashes: a file is written under a temporary name and renamed into
place, and the files are the offset store. When a partition is assigned, the archive
resumes one past the highest last offset among that partition's files (or at the
committed offset, if further: files an operator deleted are not archived again). Kafka
offsets are committed after each write too, so consumer lag shows on the usual tools; a
crash between the rename and the commit loses nothing and duplicates nothing. A buffer
is cut into files at UTC day changes (in offset order) and at `archive_max_rows`, and the
files are written in offset order, so a crash in the middle of a flush leaves a prefix.

Records that do not decode go to `<topic>.dlq` with the bus's dead-letter headers
(reason `invalid`) before any later offset can reach a file.

Run one archive per archive directory (or give every instance the same, shared directory):
another instance's files are not visible to it otherwise.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date
from pathlib import Path
from typing import Any

# pyarrow ships no type information (no py.typed, no stubs in this workspace)
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from llmops.bus.eventbus import SUBSCRIPTION_REFRESH_MS, dead_letter_headers
from llmops.events.base import AvroSchema, TopicContract
from llmops.events.catalog import CONTRACTS, ENVELOPE_SCHEMA, Topic
from llmops.events.codec import EventCodec, EventDecodeError
from llmops.events.envelope import Envelope
from llmops.telemetry.logs import get_logger
from llmops.telemetry.metrics import ServiceMetrics
from llmops_monitoring.settings import MonitoringSettings

ARCHIVED_TOPICS: tuple[Topic, ...] = (
    Topic.LLM_COMPLETIONS,
    Topic.FEEDBACK_RECORDED,
    Topic.EVAL_RESULTS,
)
GROUP_SUFFIX = "-archive"
"""The archive's consumer group is `<prefix>monitoring-archive`, apart from the service's."""

_log = get_logger(__name__)
_FILE_NAME = re.compile(r"^part-(\d+)-(\d+)-(\d+)\.parquet$")
_UNPREFIXED_RECORDS = frozenset({"usage"})  # prompt_tokens reads better than usage_prompt_tokens
_MERGED_FIELDS = frozenset({"trace_id"})  # the envelope's trace_id column takes it
_MAX_POLL_WAIT_S = 0.5
_COMPRESSION = "zstd"


# -- the table of one topic -------------------------------------------------------------------


_PRIMITIVES: Mapping[str, pa.DataType] = {
    "null": pa.null(),
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "bytes": pa.binary(),
}
_LOGICAL: Mapping[str, pa.DataType] = {
    "timestamp-millis": pa.timestamp("ms", tz="UTC"),
    "timestamp-micros": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}


@dataclass(frozen=True)
class _Resolved:
    """An Avro type with its union with null unwrapped and named references followed."""

    schema: Any
    nullable: bool


class _AvroToArrow:
    """Arrow types of Avro types, following the named records and enums of one schema."""

    def __init__(self) -> None:
        self._named: dict[str, Any] = {}

    def resolve(self, avro: Any) -> _Resolved:
        nullable = False
        if isinstance(avro, list):
            branches = [branch for branch in avro if branch != "null"]
            if len(branches) != 1:
                msg = f"cannot archive a union of {avro!r}: only a type or null is supported"
                raise ValueError(msg)
            nullable, avro = len(branches) < len(avro), branches[0]
        if isinstance(avro, str) and avro not in _PRIMITIVES:
            avro = self._named[avro]
        if isinstance(avro, dict):
            self._remember(avro)
        return _Resolved(avro, nullable)

    def arrow(self, avro: Any) -> tuple[pa.DataType, bool]:
        resolved = self.resolve(avro)
        schema = resolved.schema
        if isinstance(schema, str):
            return _PRIMITIVES[schema], resolved.nullable
        logical = _LOGICAL.get(schema.get("logicalType", ""))
        if logical is not None:
            return logical, resolved.nullable
        kind = schema["type"]
        if kind == "record":
            fields = [self.field(sub["name"], sub["type"]) for sub in schema["fields"]]
            return pa.struct(fields), resolved.nullable
        if kind == "enum":
            return pa.string(), resolved.nullable
        if kind == "array":
            return pa.list_(self.field("item", schema["items"])), resolved.nullable
        if kind == "map":
            return pa.map_(pa.string(), self.arrow(schema["values"])[0]), resolved.nullable
        inner, nullable = self.arrow(kind)  # {"type": "string"} and the like
        return inner, nullable or resolved.nullable

    def field(self, name: str, avro: Any) -> pa.Field:
        arrow_type, nullable = self.arrow(avro)
        return pa.field(name, arrow_type, nullable=nullable)

    def _remember(self, schema: Mapping[str, Any]) -> None:
        name = schema.get("name")
        if schema.get("type") in {"record", "enum", "fixed"} and name:
            namespace = schema.get("namespace", "llmops.events")
            self._named.setdefault(name, schema)
            self._named.setdefault(f"{namespace}.{name}", schema)


@dataclass(frozen=True)
class _PayloadColumn:
    field: pa.Field
    path: tuple[str, ...]


class ArchiveTable:
    """The Arrow schema of one topic's archive files, and how an event becomes a row."""

    def __init__(self, contract: TopicContract[Any]) -> None:
        self.contract = contract
        types = _AvroToArrow()
        envelope = [types.field(f["name"], f["type"]) for f in ENVELOPE_SCHEMA["fields"]]
        renamed = {"id": "event_id", "type": "event_type"}
        envelope_fields = [
            pa.field(renamed.get(f.name, f.name), f.type, nullable=False) for f in envelope
        ]
        envelope_fields += [
            pa.field("trace_id", pa.string()),
            pa.field("kafka_partition", pa.int32(), nullable=False),
            pa.field("kafka_offset", pa.int64(), nullable=False),
        ]
        taken = {f.name for f in envelope_fields}
        self._payload: list[_PayloadColumn] = []
        self._payload_trace = False
        for column in self._payload_columns(contract.schema, types):
            if column.path == ("trace_id",):
                self._payload_trace = True
                continue
            name = column.field.name
            if name in taken:
                name = f"data_{name}"
            taken.add(name)
            self._payload.append(_PayloadColumn(column.field.with_name(name), column.path))
        self.schema = pa.schema(envelope_fields + [column.field for column in self._payload])

    @staticmethod
    def _payload_columns(schema: AvroSchema, types: _AvroToArrow) -> Iterator[_PayloadColumn]:
        for avro_field in schema["fields"]:
            name = avro_field["name"]
            resolved = types.resolve(avro_field["type"])
            nested = resolved.schema
            if isinstance(nested, dict) and nested.get("type") == "record":
                types.arrow(avro_field["type"])  # registers the record's named types
                prefix = "" if name in _UNPREFIXED_RECORDS else f"{name}_"
                for sub in nested["fields"]:
                    column = types.field(f"{prefix}{sub['name']}", sub["type"])
                    if resolved.nullable:
                        column = column.with_nullable(True)
                    yield _PayloadColumn(column, (name, sub["name"]))
            elif name in _MERGED_FIELDS:
                yield _PayloadColumn(pa.field(name, pa.string()), (name,))
            else:
                yield _PayloadColumn(types.field(name, avro_field["type"]), (name,))

    def row(
        self, event: Envelope[Any], *, partition: int, offset: int, traceparent: str | None
    ) -> dict[str, Any]:
        """The event as a row of this table."""
        data = event.data.model_dump(mode="python")
        trace_id = data.get("trace_id") if self._payload_trace else None
        row: dict[str, Any] = {
            "event_id": event.id,
            "event_type": event.type,
            "schema_version": event.schema_version,
            "source": event.source,
            "time": event.time,
            "tenant": event.tenant,
            "subject": event.subject,
            "trace_id": trace_id or trace_id_of(traceparent),
            "kafka_partition": partition,
            "kafka_offset": offset,
        }
        for column in self._payload:
            value: Any = data
            for key in column.path:
                value = value.get(key) if isinstance(value, dict) else None
            row[column.field.name] = value
        return row

    def to_table(self, rows: list[dict[str, Any]]) -> pa.Table:
        return pa.Table.from_pylist(rows, schema=self.schema)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header (`00-<trace>-<span>-<flags>`), if valid."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return None
    return parts[1]


# -- files --------------------------------------------------------------------------------


def file_path(root: Path, topic: str, day: date, partition: int, first: int, last: int) -> Path:
    """Where the rows of `partition` from offset `first` to `last` on `day` are archived."""
    return root / topic / f"date={day.isoformat()}" / f"part-{partition}-{first}-{last}.parquet"


def archived_positions(topic_dir: Path) -> dict[int, int]:
    """Per partition, the offset after the highest last offset among the topic's files."""
    positions: dict[int, int] = {}
    if not topic_dir.is_dir():
        return positions
    for day_dir in topic_dir.glob("date=*"):
        for entry in os.scandir(day_dir):
            match = _FILE_NAME.match(entry.name)
            if match is None:
                continue
            partition, last = int(match[1]), int(match[3])
            positions[partition] = max(positions.get(partition, 0), last + 1)
    return positions


def remove_unfinished_files(topic_dir: Path, partition: int) -> list[Path]:
    """Delete temporary files a crashed writer left for `partition`; returns them."""
    stale = list(topic_dir.glob(f"date=*/.part-{partition}-*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_atomically(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` so that readers and restarts see the whole file or none."""
    created_dir = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")  # hidden: dataset readers skip it
    pq.write_table(table, temporary, compression=_COMPRESSION)
    with temporary.open("rb") as written:
        os.fsync(written.fileno())
    temporary.replace(path)
    _fsync_directory(path.parent)
    if created_dir:
        _fsync_directory(path.parent.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- buffering ----------------------------------------------------------------------------


@dataclass
class _Pending:
    offset: int
    day: date
    row: dict[str, Any]


@dataclass
class _Buffer:
    """What one partition consumed since its last flush."""

    rows: list[_Pending] = field(default_factory=list)
    next_offset: int | None = None  # one past the last record taken (archived or dead-lettered)
    committed: int | None = None
    since: float | None = None  # monotonic time of the oldest unflushed record

    def consumed(self, offset: int) -> None:
        self.next_offset = offset + 1
        if self.since is None:
            self.since = time.monotonic()

    @property
    def dirty(self) -> bool:
        return bool(self.rows) or (
            self.next_offset is not None and self.next_offset != self.committed
        )

    def runs(self, max_rows: int) -> Iterator[list[_Pending]]:
        """The rows cut into files: at each change of day, and every `max_rows`."""
        run: list[_Pending] = []
        for pending in self.rows:
            if run and (pending.day != run[-1].day or len(run) == max_rows):
                yield run
                run = []
            run.append(pending)
        if run:
            yield run


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, archive: ParquetArchive) -> None:
        self._archive = archive

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._archive._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._archive._on_assigned(assigned)


# -- the archive ----------------------------------------------------------------------------


class ParquetArchive:
    """Consumes `topics` in its own group and writes their events to the Parquet archive.

    `start()` joins the group and returns; consumption runs in a background task until
    `stop()`, which writes what is buffered and commits. `check()` raises once the task
    has failed (a health check).
    """

    def __init__(
        self,
        settings: MonitoringSettings,
        *,
        metrics: ServiceMetrics | None = None,
        topics: Iterable[Topic] = ARCHIVED_TOPICS,
    ) -> None:
        if settings.archive_dir is None:
            msg = "MONITORING_ARCHIVE_DIR is unset: the archive is off"
            raise ValueError(msg)
        self.settings = settings
        self.root = settings.archive_dir
        self.group = f"{settings.consumer_group}{GROUP_SUFFIX}"
        self._prefix = settings.kafka_topic_prefix
        self._contracts = {
            f"{self._prefix}{topic}": CONTRACTS[topic] for topic in dict.fromkeys(topics)
        }
        self._codecs = {
            name: EventCodec(contract, settings.event_wire_format)
            for name, contract in self._contracts.items()
        }
        self._tables = {name: ArchiveTable(c) for name, c in self._contracts.items()}
        self._metrics = metrics
        self._rows_written: Counter | None = None
        self._files_written: Counter | None = None
        if metrics is not None:
            self._rows_written = Counter(
                "llmops_archive_rows_total",
                "Events written to the Parquet archive.",
                ["topic"],
                registry=metrics.registry,
            )
            self._files_written = Counter(
                "llmops_archive_files_total",
                "Parquet files written to the archive.",
                ["topic"],
                registry=metrics.registry,
            )
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self._lock = asyncio.Lock()  # one of: handling a poll, a flush, a rebalance step
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the archive's consumer group and start archiving in the background."""
        if self._task is not None:
            msg = "the archive is already started"
            raise RuntimeError(msg)
        self.root.mkdir(parents=True, exist_ok=True)
        servers = self.settings.kafka_bootstrap_servers
        self._producer = AIOKafkaProducer(
            bootstrap_servers=servers,
            acks="all",
            enable_idempotence=True,
            client_id=self.group,
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A topic created after the subscription is joined within seconds, not at the
            # default 5-minute metadata refresh.
            metadata_max_age_ms=SUBSCRIPTION_REFRESH_MS,
        )
        await self._producer.start()
        try:
            await self._consumer.start()
        except BaseException:
            await self._producer.stop()
            raise
        self._consumer.subscribe(list(self._contracts), listener=_Rebalance(self))
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="parquet-archive")
        _log.info("archive started", group=self.group, topics=list(self._contracts))

    async def stop(self) -> None:
        """Write what is buffered, commit, and leave the group."""
        if self._task is None:
            return
        self._stopping.set()
        try:
            await self._task
        except Exception as exc:
            _log.error("archive stopped after a failure", error=repr(exc))
        finally:
            self._task = None
            try:
                async with self._lock:
                    await self._flush_all()
            finally:
                assert self._consumer is not None
                assert self._producer is not None
                await self._consumer.stop()
                await self._producer.stop()
                self._buffers.clear()
        _log.info("archive stopped", group=self.group)

    async def check(self) -> None:
        """Raise when the archive is not archiving (for `/healthz`)."""
        if self._task is None:
            msg = "archive not started"
            raise RuntimeError(msg)
        if self._task.done():
            error = self._task.exception()
            msg = f"archive stopped: {error!r}"
            raise RuntimeError(msg)

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        wait_ms = int(min(self.settings.archive_flush_s, _MAX_POLL_WAIT_S) * 1000)
        while not self._stopping.is_set():
            polled = await consumer.getmany(timeout_ms=wait_ms)
            async with self._lock:
                for tp, records in polled.items():
                    buffer = self._buffers.get(tp)
                    # No buffer: revoked since the poll (its next owner reads it), or fetched
                    # before `_on_assigned` ran (which seeks back to where the files end).
                    if buffer is not None:
                        await self._take(tp, buffer, records)
                await self._flush_due()

    async def _take(self, tp: TopicPartition, buffer: _Buffer, records: list[Any]) -> None:
        codec, table = self._codecs[tp.topic], self._tables[tp.topic]
        for record in records:
            if buffer.next_offset is not None and record.offset < buffer.next_offset:
                # Fetched before the seek of an assignment (or fetched again after it):
                # already in a file, or already taken into this buffer.
                continue
            headers = {name: value.decode(errors="replace") for name, value in record.headers}
            try:
                event = codec.decode(record.value or b"", headers)
            except EventDecodeError as exc:
                await self._dead_letter(record, headers, exc)
            else:
                row = table.row(
                    event,
                    partition=record.partition,
                    offset=record.offset,
                    traceparent=headers.get("traceparent"),
                )
                day = event.time.astimezone(UTC).date()
                buffer.rows.append(_Pending(record.offset, day, row))
            buffer.consumed(record.offset)
            if len(buffer.rows) >= self.settings.archive_max_rows:
                await self._flush(tp, buffer)

    async def _flush_due(self) -> None:
        now = time.monotonic()
        for tp, buffer in list(self._buffers.items()):
            if buffer.since is not None and now - buffer.since >= self.settings.archive_flush_s:
                await self._flush(tp, buffer)

    async def _flush_all(self) -> None:
        for tp, buffer in list(self._buffers.items()):
            await self._flush(tp, buffer)

    async def _flush(self, tp: TopicPartition, buffer: _Buffer) -> None:
        """Write the buffer's rows (files in offset order), then commit its position."""
        if not buffer.dirty:
            buffer.since = None
            return
        table = self._tables[tp.topic]
        topic = self._contracts[tp.topic].topic
        for run in buffer.runs(self.settings.archive_max_rows):
            path = file_path(
                self.root, topic, run[0].day, tp.partition, run[0].offset, run[-1].offset
            )
            arrow_table = table.to_table([pending.row for pending in run])
            await asyncio.to_thread(write_atomically, arrow_table, path)
            if self._rows_written is not None and self._files_written is not None:
                self._rows_written.labels(topic).inc(len(run))
                self._files_written.labels(topic).inc()
        written = len(buffer.rows)
        buffer.rows.clear()
        buffer.since = None
        position = buffer.next_offset
        if (
            position is not None
            and position != buffer.committed
            and await self._commit(tp, position)
        ):
            buffer.committed = position
        if written:
            _log.debug("archived", topic=topic, partition=tp.partition, rows=written)

    async def _commit(self, tp: TopicPartition, offset: int) -> bool:
        """Commit for lag visibility only: the files, not Kafka, say where to resume."""
        assert self._consumer is not None
        try:
            await self._consumer.commit({tp: offset})
        except KafkaError as exc:
            _log.warning("archive commit failed", topic=tp.topic, offset=offset, error=repr(exc))
            return False
        return True

    async def _dead_letter(
        self, record: Any, headers: dict[str, str], error: EventDecodeError
    ) -> None:
        """Send an undecodable record's bytes to `<topic>.dlq`, as the event bus does."""
        assert self._producer is not None
        contract = self._contracts[record.topic]
        extra = dead_letter_headers(
            error,
            reason="invalid",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            group=self.group,
            attempts=0,
        )
        await self._producer.send_and_wait(
            f"{self._prefix}{contract.dlq}",
            record.value or b"",
            key=record.key,
            headers=[(name, value.encode()) for name, value in (headers | extra).items()],
        )
        if self._metrics is not None:
            self._metrics.dead_lettered.labels(
                self._metrics.service, contract.topic, "invalid"
            ).inc()
        _log.error(
            "archive dead-lettered a record",
            topic=record.topic,
            offset=record.offset,
            error=str(error),
        )

    # -- rebalances -------------------------------------------------------------------------

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Write and commit what the revoked partitions buffered, for their next owner."""
        async with self._lock:
            for tp in revoked:
                buffer = self._buffers.pop(tp, None)
                if buffer is not None:
                    await self._flush(tp, buffer)

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Resume each partition one past its last archived offset (the files decide)."""
        consumer = self._consumer
        assert consumer is not None
        async with self._lock:
            positions: dict[str, dict[int, int]] = {}
            for tp in sorted(assigned):
                topic_dir = self.root / self._contracts[tp.topic].topic
                stale = await asyncio.to_thread(remove_unfinished_files, topic_dir, tp.partition)
                if stale:
                    _log.warning("removed unfinished archive files", files=[str(p) for p in stale])
                if tp.topic not in positions:
                    positions[tp.topic] = await asyncio.to_thread(archived_positions, topic_dir)
                archived = positions[tp.topic].get(tp.partition)
                committed = await consumer.committed(tp)
                known = [offset for offset in (archived, committed) if offset is not None]
                resume = max(known) if known else None
                # Always seek: records fetched before this callback are dropped by `_take`.
                if resume is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, resume)
                buffer = self._buffers[tp] = _Buffer(committed=committed, next_offset=resume)
                if archived is not None and (committed is None or archived > committed):
                    if await self._commit(tp, archived):  # lag as the files tell it
                        buffer.committed = archived
                    _log.info(
                        "archive resumes after its files",
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=archived,
                        committed=committed,
                    )


__all__ = [
    "ARCHIVED_TOPICS",
    "ArchiveTable",
    "ParquetArchive",
    "archived_positions",
    "file_path",
    "trace_id_of",
    "write_atomically",
]
