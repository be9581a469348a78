"""Archive tables from the schemas, rows, file naming and the files as the offset store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]  # no type information shipped
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from aiokafka import TopicPartition

from llmops.events.catalog import (
    CONTRACTS,
    CacheResult,
    CallStatus,
    ChatMessage,
    ChatRole,
    CompletionRecorded,
    ErrorInfo,
    RedactionPolicy,
    TokenUsage,
    Topic,
)
from llmops.events.codec import EventCodec
from llmops.events.envelope import new_event
from llmops.settings import WireFormat
from llmops_monitoring.archive import (
    ArchiveTable,
    ParquetArchive,
    _Buffer,
    _Pending,
    archived_positions,
    file_path,
    remove_unfinished_files,
    trace_id_of,
    write_atomically,
)
from llmops_monitoring.settings import MonitoringSettings

COMPLETIONS = CONTRACTS[Topic.LLM_COMPLETIONS]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _completion(*, trace_id: str | None = None) -> CompletionRecorded:
    return CompletionRecorded(
        completion_id="cmpl-1",
        request_id="req-1",
        api_key_id="key-1",
        requested_model="default",
        served_model="gpt-4o",
        messages=[ChatMessage(role=ChatRole.USER, content="hi")],
        redaction=RedactionPolicy.MASKED,
        usage=TokenUsage(prompt_tokens=12, completion_tokens=3, total_tokens=15),
        latency_ms=250.5,
        cost_usd=0.001,
        cache=CacheResult.EXACT,
        stream=True,
        status=CallStatus.ERROR,
        error=ErrorInfo(code="upstream_timeout", message="slow"),
        tags=["a", "b"],
        trace_id=trace_id,
    )


@pytest.mark.parametrize("topic", list(Topic))
def test_every_catalog_topic_has_an_archive_table(topic: Topic) -> None:
    schema = ArchiveTable(CONTRACTS[topic]).schema
    assert schema.names[:10] == [
        "event_id",
        "event_type",
        "schema_version",
        "source",
        "time",
        "tenant",
        "subject",
        "trace_id",
        "kafka_partition",
        "kafka_offset",
    ]
    assert len(set(schema.names)) == len(schema.names)
    assert schema.field("time").type == pa.timestamp("ms", tz="UTC")


def test_completion_columns_flatten_records_and_keep_lists_nested() -> None:
    schema = ArchiveTable(COMPLETIONS).schema
    assert schema.field("prompt_tokens").type == pa.int32()
    assert schema.field("cost_usd").type == pa.float64()
    assert schema.field("prompt_name").nullable  # the prompt reference is optional
    assert schema.field("error_code").nullable
    assert schema.field("cache").type == pa.string()  # enums as their values
    assert schema.field("tags").type == pa.list_(pa.field("item", pa.string(), nullable=False))
    messages = schema.field("messages").type
    assert pa.types.is_list(messages)
    assert messages.value_type.names == ["role", "content"]
    assert "usage" not in schema.names
    assert "prompt" not in schema.names


def test_an_event_becomes_one_row() -> None:
    table = ArchiveTable(COMPLETIONS)
    event = new_event(
        COMPLETIONS,
        _completion(),
        source="gateway",
        tenant="acme",
        subject="cmpl-1",
        time=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    )
    header = f"00-{TRACE}-00f067aa0ba902b7-01"
    row = table.row(event, partition=2, offset=41, traceparent=header)
    (written,) = table.to_table([row]).to_pylist()
    assert written["event_id"] == event.id
    assert written["time"] == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert (written["kafka_partition"], written["kafka_offset"]) == (2, 41)
    assert written["trace_id"] == TRACE
    assert (written["prompt_tokens"], written["total_tokens"]) == (12, 15)
    assert (written["error_code"], written["prompt_name"]) == ("upstream_timeout", None)
    assert written["messages"] == [{"role": "user", "content": "hi"}]
    assert (written["cache"], written["status"], written["tags"]) == ("exact", "error", ["a", "b"])


def test_the_payloads_own_trace_id_wins_over_the_header() -> None:
    table = ArchiveTable(COMPLETIONS)
    own = "0af7651916cd43dd8448eb211c80319c"
    event = new_event(
        COMPLETIONS, _completion(trace_id=own), source="gateway", tenant="t", subject="c"
    )
    row = table.row(event, partition=0, offset=0, traceparent=f"00-{TRACE}-00f067aa0ba902b7-01")
    assert row["trace_id"] == own


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
        (None, None),
        ("", None),
        ("garbage", None),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),
    ],
)
def test_trace_id_of_a_traceparent(header: str | None, expected: str | None) -> None:
    assert trace_id_of(header) == expected


def _pending(offset: int, day: int) -> _Pending:
    return _Pending(offset, date(2026, 11, day), {})


def test_a_buffer_is_cut_at_day_changes_and_at_max_rows_in_offset_order() -> None:
    buffer = _Buffer(rows=[_pending(o, 22) for o in range(5)] + [_pending(5, 23), _pending(6, 22)])
    runs = [[p.offset for p in run] for run in buffer.runs(max_rows=2)]
    assert runs == [[0, 1], [2, 3], [4], [5], [6]]


def test_archived_positions_come_from_file_names(tmp_path: Path) -> None:
    topic_dir = tmp_path / "llm.completions"
    for name in (
        "date=2026-11-22/part-0-0-9.parquet",
        "date=2026-11-23/part-0-10-14.parquet",
        "date=2026-11-22/part-0-15-15.parquet",  # a late event: older day, newer offset
        "date=2026-11-23/part-1-0-3.parquet",
        "date=2026-11-23/.part-0-16-99.parquet.tmp",  # unfinished: does not count
        "date=2026-11-23/notes.txt",
    ):
        (topic_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (topic_dir / name).write_bytes(b"")
    assert archived_positions(topic_dir) == {0: 16, 1: 4}
    assert archived_positions(tmp_path / "missing") == {}
    removed = remove_unfinished_files(topic_dir, 0)
    assert [p.name for p in removed] == [".part-0-16-99.parquet.tmp"]
    assert not removed[0].exists()


def test_files_are_written_whole_under_their_final_name(tmp_path: Path) -> None:
    path = file_path(tmp_path, "eval.results", date(2026, 11, 23), 1, 7, 9)
    assert path == tmp_path / "eval.results/date=2026-11-23/part-1-7-9.parquet"
    write_atomically(pa.table({"x": [1, 2, 3]}), path)
    assert pq.read_table(path).column("x").to_pylist() == [1, 2, 3]
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@dataclass(frozen=True)
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


async def test_records_fetched_before_the_resume_seek_are_not_taken_twice(tmp_path: Path) -> None:
    archive = ParquetArchive(MonitoringSettings(archive_dir=tmp_path))
    codec = EventCodec(COMPLETIONS, WireFormat.JSON)
    encoded = codec.encode(
        new_event(COMPLETIONS, _completion(), source="gateway", tenant="t", subject="cmpl-1")
    )
    headers = tuple((name, value.encode()) for name, value in encoded.headers.items())

    def fetched(*offsets: int) -> list[_Record]:
        topic = "llm.completions"
        return [_Record(topic, 0, o, encoded.key, encoded.value, headers) for o in offsets]

    # The files end at offset 5; a fetch from before the seek returns 0..8, then the
    # fetch after the seek returns 6..8 again.
    buffer = _Buffer(next_offset=6)
    tp = TopicPartition("llm.completions", 0)
    await archive._take(tp, buffer, [*fetched(*range(9)), *fetched(6, 7, 8)])
    assert [pending.offset for pending in buffer.rows] == [6, 7, 8]
    assert buffer.next_offset == 9


def test_the_archive_needs_a_directory() -> None:
    with pytest.raises(ValueError, match="MONITORING_ARCHIVE_DIR"):
        ParquetArchive(MonitoringSettings(archive_dir=None))
