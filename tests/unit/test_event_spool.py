"""The on-disk event spool: order, durability across reopen, bounds, corruption, one owner."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.bus.spool import EventSpool, SpooledEvent, SpoolLockedError, encode_record
from llmops.settings import ConfigurationError, load_settings
from llmops_gateway.settings import GatewaySettings
from llmops_indexer.settings import IndexerSettings


def _event(n: int, *, size: int = 10) -> SpooledEvent:
    return SpooledEvent(
        event_id=f"evt-{n}",
        topic="t.feedback.events",
        key=f"key-{n % 3}".encode(),
        value=bytes([n % 256]) * size,
        headers={"content-type": "application/json", "traceparent": f"00-{n:032x}-{n:016x}-01"},
    )


def _ids(spool: EventSpool) -> list[str]:
    """Every waiting event id, oldest first, acknowledging as a drain would."""
    seen: list[str] = []
    while (segment := spool.head()) is not None:
        seen.extend(event.event_id for _, event in segment.events)
        spool.ack(segment.seq, [index for index, _ in segment.events])
    return seen


def test_events_come_back_in_order_and_survive_a_reopen(tmp_path: Path) -> None:
    with EventSpool(tmp_path, max_bytes=1 << 20) as spool:
        assert spool.append([_event(n) for n in range(3)]).stored == 3
        assert spool.append([_event(n) for n in range(3, 5)]).stored == 2
        first = spool.head()
        assert first is not None
        spool.ack(first.seq, [0, 2])  # the drain acknowledged two of the first segment

    with EventSpool(tmp_path, max_bytes=1 << 20) as reopened:
        assert reopened.pending_events == 3
        segment = reopened.head()
        assert segment is not None
        assert segment.events == [(1, _event(1))]  # key, value and headers intact
        assert _ids(reopened) == ["evt-1", "evt-3", "evt-4"]
        assert reopened.is_empty()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["LOCK"]


def test_a_full_spool_keeps_the_oldest_and_refuses_the_newest(tmp_path: Path) -> None:
    record = len(encode_record(_event(0, size=1000)))
    with EventSpool(tmp_path / "probe", max_bytes=1 << 20) as probe:
        probe.append([_event(0, size=1000)])
        per_segment = probe.size_bytes - record  # magic and header
    # Room for two segments holding four records, and half a fifth record.
    with EventSpool(
        tmp_path / "full", max_bytes=2 * per_segment + 4 * record + record // 2
    ) as spool:
        first = spool.append([_event(n, size=1000) for n in range(3)])
        second = spool.append([_event(n, size=1000) for n in range(3, 8)])
        assert (first.stored, first.refused) == (3, 0)
        assert second.stored == 1
        assert second.refused == 4
        assert spool.size_bytes <= spool.max_bytes
        assert _ids(spool) == ["evt-0", "evt-1", "evt-2", "evt-3"]
        # Acknowledged events free their room.
        assert spool.append([_event(9, size=1000)]).stored == 1

    with EventSpool(tmp_path / "count", max_bytes=1 << 20, max_events=2) as spool:
        outcome = spool.append([_event(n) for n in range(5)])
        assert (outcome.stored, outcome.refused) == (2, 3)


def test_tried_marks_are_durable(tmp_path: Path) -> None:
    with EventSpool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append([_event(0)], tried_since_ms=1_000)
        spool.append([_event(1)])
        spool.append([_event(2)])
        untried = spool.head()
        assert untried is not None
        second_seq = untried.seq + 1
        spool.mark_tried(second_seq, 2_000)

    with EventSpool(tmp_path, max_bytes=1 << 20) as spool:
        tried = spool.tried()
        assert [(segment.tried_since_ms, segment.events[0][1].event_id) for segment in tried] == [
            (1_000, "evt-0"),
            (2_000, "evt-1"),
        ]


def test_a_damaged_record_loses_only_what_follows_it(tmp_path: Path) -> None:
    with EventSpool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append([_event(n, size=50) for n in range(5)])
        spool.append([_event(n, size=50) for n in range(5, 7)])
    segment_file = sorted(tmp_path.glob("*.seg"))[0]
    raw = bytearray(segment_file.read_bytes())
    third = raw.index(bytes([2]) * 50)  # the value of the third record
    raw[third + 10] ^= 0xFF
    segment_file.write_bytes(bytes(raw))

    with EventSpool(tmp_path, max_bytes=1 << 20) as spool:
        assert _ids(spool) == ["evt-0", "evt-1", "evt-5", "evt-6"]
        assert spool.take_lost_events() == 3
        assert spool.take_lost_events() == 0
    quarantined = list((tmp_path / "corrupt").iterdir())
    assert len(quarantined) == 1
    assert quarantined[0].read_bytes() == bytes(raw)  # kept as found, for an operator


def test_unreadable_and_truncated_segments_are_quarantined_not_fatal(tmp_path: Path) -> None:
    with EventSpool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append([_event(0)])
        spool.append([_event(n) for n in range(1, 4)])
        spool.append([_event(4)])
    first, second, _ = sorted(tmp_path.glob("*.seg"))
    first.write_bytes(b"this is not a spool segment")
    second.write_bytes(second.read_bytes()[:-5])  # torn last record
    (tmp_path / "00000000000000000099.seg.tmp").write_bytes(b"half a write")

    with EventSpool(tmp_path, max_bytes=1 << 20) as spool:
        assert _ids(spool) == ["evt-1", "evt-2", "evt-4"]
    assert len(list((tmp_path / "corrupt").iterdir())) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_one_process_owns_a_spool_directory(tmp_path: Path) -> None:
    with EventSpool(tmp_path, max_bytes=1 << 20):
        other = EventSpool(tmp_path, max_bytes=1 << 20)
        with pytest.raises(SpoolLockedError, match="EVENT_SPOOL_PATH"):
            other.open()
    with EventSpool(tmp_path, max_bytes=1 << 20) as again:
        assert again.is_empty()


def test_each_service_spools_in_its_own_directory_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert GatewaySettings().spool_path == Path(".llmops/data/spool/gateway")
    assert IndexerSettings().spool_path == Path(".llmops/data/spool/indexer")
    monkeypatch.setenv("EVENT_SPOOL_PATH", str(tmp_path))
    monkeypatch.setenv("EVENT_SPOOL_MAX_BYTES", "1048576")
    settings = GatewaySettings()
    assert (settings.spool_path, settings.event_spool_max_bytes) == (tmp_path, 1 << 20)
    monkeypatch.setenv("EVENT_SPOOL_MAX_BYTES", "10")
    with pytest.raises(ConfigurationError, match="EVENT_SPOOL_MAX_BYTES"):
        load_settings(GatewaySettings)
