"""The Parquet archive against the real broker: every event once, by topic and UTC day.

Files are read back with DuckDB the way docs/analysts.md tells analysts to. Restarts, a
SIGKILL between writing a file and committing its offsets, and poison records are covered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from llmops.events.catalog import (
    CONTRACTS,
    CacheResult,
    CallStatus,
    ChatMessage,
    ChatRole,
    CompletionRecorded,
    EvaluationScored,
    FeedbackRecorded,
    MetricScore,
    PromptRef,
    RedactionPolicy,
    ScoreKind,
    Thumbs,
    TokenUsage,
    Topic,
)
from llmops.events.codec import EventCodec
from llmops.events.envelope import Envelope, new_event
from llmops.settings import WireFormat
from llmops.telemetry import ServiceMetrics
from llmops.testing import headers_of, read_topic, wait_until
from llmops_monitoring.archive import ParquetArchive
from llmops_monitoring.settings import MonitoringSettings

pytestmark = pytest.mark.kafka

WORKER = Path(__file__).with_name("archive_worker.py")
COMPLETIONS = CONTRACTS[Topic.LLM_COMPLETIONS]
FEEDBACK = CONTRACTS[Topic.FEEDBACK_RECORDED]
EVAL_RESULTS = CONTRACTS[Topic.EVAL_RESULTS]
BY_TYPE = {contract.event_type: contract for contract in CONTRACTS.values()}
DAY_1 = datetime(2026, 11, 22, 23, 59, 30, tzinfo=UTC)
DAY_2 = datetime(2026, 11, 23, 0, 0, 30, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def completion(
    n: int,
    *,
    time: datetime = DAY_2,
    tenant: str = "acme",
    model: str = "gpt-4o",
    cost_usd: float = 0.01,
) -> Envelope[CompletionRecorded]:
    payload = CompletionRecorded(
        completion_id=f"cmpl-{n}",
        request_id=f"req-{n}",
        api_key_id="key-1",
        requested_model="default",
        served_model=model,
        prompt=PromptRef(name="support", version=3, label="production"),
        messages=[ChatMessage(role=ChatRole.USER, content=f"question {n}")],
        output=f"answer {n}",
        redaction=RedactionPolicy.NONE,
        usage=TokenUsage(prompt_tokens=100 + n, completion_tokens=10, total_tokens=110 + n),
        latency_ms=200.0 + n,
        cost_usd=cost_usd,
        cache=CacheResult.NONE,
        stream=False,
        status=CallStatus.OK,
        tags=["vip"] if n % 2 else [],
    )
    return new_event(
        COMPLETIONS, payload, source="gateway", tenant=tenant, subject=f"cmpl-{n}", time=time
    )


def feedback(n: int) -> Envelope[FeedbackRecorded]:
    payload = FeedbackRecorded(
        feedback_id=f"fb-{n}",
        completion_id=f"cmpl-{n}",
        user_id="u-1",
        thumbs=Thumbs.DOWN,
        has_correction=False,
        score=0.0,
        created=True,
    )
    return new_event(FEEDBACK, payload, source="feedback", tenant="acme", subject=f"cmpl-{n}")


def eval_result(n: int) -> Envelope[EvaluationScored]:
    payload = EvaluationScored(
        run_id="run-1",
        kind=ScoreKind.ITEM,
        item_id=f"item-{n}",
        scores=[MetricScore(metric="rougeL", value=0.5 + n / 10)],
        details={"judge": "none"},
    )
    return new_event(EVAL_RESULTS, payload, source="evaluation", tenant="acme", subject="run-1")


@asynccontextmanager
async def producer(settings: MonitoringSettings) -> AsyncIterator[Callable[..., Any]]:
    """A send function: events (encoded with their topic's codec) or raw bytes to a topic."""
    kafka = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await kafka.start()

    async def send(
        *events: Envelope[Any], raw: bytes | None = None, topic: str = "", traceparent: str = ""
    ) -> None:
        prefix = settings.kafka_topic_prefix
        if raw is not None:
            headers = [("content-type", b"application/json")]
            await kafka.send_and_wait(f"{prefix}{topic}", raw, key=b"poison", headers=headers)
        for event in events:
            contract = BY_TYPE[event.type]
            encoded = EventCodec(contract, WireFormat.JSON).encode(event)
            headers = [(k, v.encode()) for k, v in encoded.headers.items()]
            if traceparent:
                headers.append(("traceparent", traceparent.encode()))
            await kafka.send_and_wait(
                f"{prefix}{contract.topic}", encoded.value, key=encoded.key, headers=headers
            )

    try:
        yield send
    finally:
        await kafka.stop()


def archive_settings(
    service_settings: Callable[..., Any], archive_dir: Path, **values: Any
) -> MonitoringSettings:
    settings: MonitoringSettings = service_settings(
        MonitoringSettings,
        archive_dir=str(archive_dir),
        archive_flush_s=0.2,
        **values,
    )
    return settings


def query(archive_dir: Path, topic: str, sql: str) -> list[tuple[Any, ...]]:
    """Run `sql` over the topic's files, exposed as the view `events` (as in the docs)."""
    glob = str(archive_dir / topic / "*" / "*.parquet")
    with duckdb.connect() as con:
        con.execute(
            "CREATE VIEW events AS SELECT * FROM "  # noqa: S608  # a test's own tmp path
            f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
        )
        return con.execute(sql).fetchall()


def row_count(archive_dir: Path, topic: str) -> int:
    if not any((archive_dir / topic).glob("*/*.parquet")):
        return 0
    ((count,),) = query(archive_dir, topic, "SELECT count(*) FROM events")
    return int(count)


async def wait_rows(archive_dir: Path, topic: str, expected: int, timeout: float = 60) -> None:
    await wait_until(
        lambda: row_count(archive_dir, topic) >= expected,
        timeout=timeout,
        what=f"{expected} rows of {topic}",
    )
    assert row_count(archive_dir, topic) == expected


async def committed_offsets(settings: MonitoringSettings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{settings.consumer_group}-archive")
    finally:
        await admin.close()
    prefix = settings.kafka_topic_prefix
    return {tp.topic.removeprefix(prefix): meta.offset for tp, meta in offsets.items()}


def part_files(archive_dir: Path, topic: str) -> list[Path]:
    return sorted((archive_dir / topic).glob("date=*/part-*.parquet"))


@asynccontextmanager
async def running(archive: ParquetArchive) -> AsyncIterator[ParquetArchive]:
    await archive.start()
    try:
        yield archive
    finally:
        await archive.stop()


async def test_every_event_is_archived_once_by_topic_and_utc_day(
    service_settings: Callable[..., Any], tmp_path: Path
) -> None:
    archive_dir = tmp_path / "archive"
    settings = archive_settings(service_settings, archive_dir, archive_max_rows=3)
    day_1 = [completion(n, time=DAY_1 + timedelta(seconds=n), tenant="acme") for n in range(4)]
    day_2 = [
        completion(n, time=DAY_2 + timedelta(seconds=n), tenant="globex", cost_usd=0.5)
        for n in range(4, 7)
    ]
    metrics = ServiceMetrics("monitoring")
    async with producer(settings) as send, running(ParquetArchive(settings, metrics=metrics)):
        await send(*day_1[:2], traceparent=TRACEPARENT)
        await send(*day_1[2:], *day_2, feedback(1), feedback(2), eval_result(1), eval_result(2))
        await wait_rows(archive_dir, Topic.LLM_COMPLETIONS, 7)
        await wait_rows(archive_dir, Topic.FEEDBACK_RECORDED, 2)
        await wait_rows(archive_dir, Topic.EVAL_RESULTS, 2)
        await wait_until(
            lambda: _committed_is(settings, {Topic.LLM_COMPLETIONS: 7, Topic.EVAL_RESULTS: 2}),
            what="the archive's commits",
        )

    # Hive-style day folders; files of at most archive_max_rows, named by their first and
    # last offsets, which together cover every offset once.
    files = part_files(archive_dir, Topic.LLM_COMPLETIONS)
    covered: list[int] = []
    for path in files:
        day = path.parent.name.removeprefix("date=")
        partition, first, last = map(int, path.stem.removeprefix("part-").split("-"))
        with duckdb.connect() as con:
            in_file = con.execute(f"SELECT kafka_offset FROM '{path}'")  # noqa: S608  # tmp path
            offsets = [row[0] for row in in_file.fetchall()]
        assert (partition, first, last) == (0, offsets[0], offsets[-1]), path
        assert len(offsets) <= 3, path
        assert offsets == sorted(offsets)
        assert {day} == {
            DAY_1.date().isoformat() if o < 4 else DAY_2.date().isoformat() for o in offsets
        }
        covered += offsets
    assert covered == list(range(7))
    assert not list(archive_dir.rglob("*.tmp"))
    assert query(
        archive_dir,
        Topic.LLM_COMPLETIONS,
        "SELECT date, tenant, count(*), round(sum(cost_usd), 4), sum(prompt_tokens) "
        "FROM events GROUP BY ALL ORDER BY date",
    ) == [
        (DAY_1.date(), "acme", 4, 0.04, 100 + 101 + 102 + 103),
        (DAY_2.date(), "globex", 3, 1.5, 104 + 105 + 106),
    ]
    # Envelope, flattened records, nested lists, trace id from the header, Kafka coordinates.
    rows = query(
        archive_dir,
        Topic.LLM_COMPLETIONS,
        "SELECT event_id, epoch_ms(time), subject, trace_id, served_model, prompt_name, "
        "prompt_version, messages[1].content, tags, status, kafka_offset "
        "FROM events ORDER BY kafka_offset",
    )
    expected_ids = [event.id for event in day_1 + day_2]
    assert [row[0] for row in rows] == expected_ids
    assert rows[0][1] == DAY_1.timestamp() * 1000  # (timestamptz to Python needs pytz)
    assert rows[0][2:] == (
        "cmpl-0",
        TRACE,
        "gpt-4o",
        "support",
        3,
        "question 0",
        [],
        "ok",
        0,
    )
    assert [row[3] for row in rows] == [TRACE, TRACE, None, None, None, None, None]
    assert rows[5][8] == ["vip"]
    # Feedback and evaluation scores in their own folders, nested scores unnestable.
    assert query(
        archive_dir,
        Topic.EVAL_RESULTS,
        "SELECT item_id, s.metric, s.value, details['judge'] "
        "FROM events, unnest(scores) AS u(s) ORDER BY item_id",
    ) == [("item-1", "rougeL", 0.6, "none"), ("item-2", "rougeL", 0.7, "none")]
    assert query(
        archive_dir, Topic.FEEDBACK_RECORDED, "SELECT completion_id, thumbs FROM events ORDER BY 1"
    ) == [("cmpl-1", "down"), ("cmpl-2", "down")]
    exported = metrics.registry.get_sample_value(
        "llmops_archive_rows_total", {"topic": Topic.LLM_COMPLETIONS}
    )
    assert exported == 7


async def test_a_restarted_archive_resumes_after_its_files(
    service_settings: Callable[..., Any], tmp_path: Path
) -> None:
    archive_dir = tmp_path / "archive"
    settings = archive_settings(service_settings, archive_dir)
    first = [completion(n) for n in range(4)]
    later = [completion(n) for n in range(4, 7)]
    async with producer(settings) as send:
        async with running(ParquetArchive(settings)):
            await send(*first)
            await wait_rows(archive_dir, Topic.LLM_COMPLETIONS, 4)
        # A crashed writer's unfinished file: removed, never read.
        stale = archive_dir / Topic.LLM_COMPLETIONS / "date=2026-11-23" / ".part-0-4-9.parquet.tmp"
        stale.write_bytes(b"half a file")
        await send(*later)
        async with running(ParquetArchive(settings)):
            await wait_rows(archive_dir, Topic.LLM_COMPLETIONS, 7)
            await wait_until(
                lambda: _committed_is(settings, {Topic.LLM_COMPLETIONS: 7}), what="commit"
            )
    assert not stale.exists()
    ids = query(archive_dir, Topic.LLM_COMPLETIONS, "SELECT event_id FROM events ORDER BY 1")
    assert sorted(row[0] for row in ids) == sorted(event.id for event in first + later)


async def test_files_written_but_not_committed_when_killed_are_not_archived_again(
    service_settings: Callable[..., Any], tmp_path: Path
) -> None:
    archive_dir = tmp_path / "archive"
    settings = archive_settings(service_settings, archive_dir)
    before = [completion(n) for n in range(6)]
    after = [completion(n) for n in range(6, 9)]
    async with producer(settings) as send:
        await send(*before)
        # The worker writes the files, then hangs in the commit of offset 6: killed there.
        worker = _start_worker(settings, archive_dir, ARCHIVE_STALL_COMMIT_AT="6")
        try:
            await wait_rows(archive_dir, Topic.LLM_COMPLETIONS, 6, timeout=90)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        finally:
            worker.kill()
        committed = await committed_offsets(settings)
        assert committed.get(Topic.LLM_COMPLETIONS, -1) < 6, "the kill came before the commit"

        await send(*after)
        async with running(ParquetArchive(settings)):
            await wait_rows(archive_dir, Topic.LLM_COMPLETIONS, 9, timeout=90)
            await wait_until(
                lambda: _committed_is(settings, {Topic.LLM_COMPLETIONS: 9}), what="commit"
            )
    rows = query(
        archive_dir,
        Topic.LLM_COMPLETIONS,
        "SELECT count(*), count(DISTINCT event_id), min(kafka_offset), max(kafka_offset) "
        "FROM events",
    )
    assert rows == [(9, 9, 0, 8)]


async def test_undecodable_records_go_to_the_dlq_and_archiving_goes_on(
    service_settings: Callable[..., Any], tmp_path: Path
) -> None:
    archive_dir = tmp_path / "archive"
    settings = archive_settings(service_settings, archive_dir)
    async with producer(settings) as send, running(ParquetArchive(settings)) as archive:
        await send(completion(1))
        await send(raw=b"{not json", topic=Topic.LLM_COMPLETIONS)
        await send(completion(2))
        await wait_rows(archive_dir, Topic.LLM_COMPLETIONS, 2)
        await archive.check()  # still healthy

    dead = await read_topic(
        settings.kafka_bootstrap_servers,
        f"{settings.kafka_topic_prefix}{COMPLETIONS.dlq}",
        count=1,
    )
    assert dead[0].value == b"{not json"
    headers = headers_of(dead[0])
    assert headers["dlq-reason"] == "invalid"
    assert headers["dlq-error-class"] == "EventDecodeError"
    assert headers["dlq-original-topic"] == f"{settings.kafka_topic_prefix}{Topic.LLM_COMPLETIONS}"
    assert headers["dlq-original-offset"] == "1"
    assert headers["dlq-consumer-group"] == f"{settings.consumer_group}-archive"
    assert query(
        archive_dir, Topic.LLM_COMPLETIONS, "SELECT kafka_offset FROM events ORDER BY 1"
    ) == [(0,), (2,)]


async def _committed_is(settings: MonitoringSettings, expected: dict[str, int]) -> bool:
    committed = await committed_offsets(settings)
    return all(committed.get(topic) == offset for topic, offset in expected.items())


def _start_worker(
    settings: MonitoringSettings, archive_dir: Path, **extra_env: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "MONITORING_ARCHIVE_DIR": str(archive_dir),
        "MONITORING_ARCHIVE_FLUSH_S": "0.2",
        **extra_env,
    }
    return subprocess.Popen([sys.executable, str(WORKER)], env=env)
