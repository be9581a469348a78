"""A bounded on-disk queue of encoded events that wait for Kafka: the outbox's spool.

Layout of a spool directory (one per process; a lock file refuses a second one):

    00000000000000000007.seg     a segment: a batch of events, written once, never edited
    00000000000000000007.acked   indexes of the segment's events Kafka acknowledged
    00000000000000000007.tried   when the segment's events were first handed to a producer
    corrupt/                     segments that failed their checksums, kept for an operator

Durability: a segment is written to a temporary file, fsynced, renamed into place and the
directory fsynced before `append` returns, so an event `append` accepted survives a crash
or power loss. The `.tried` marker is written the same way *before* any event of the
segment is handed to a producer; it is what tells a restarted outbox that an event may
already be on the topic and must be looked for before it is sent again (ADR 0009). The
`.acked` file is appended without fsync: an index it loses is looked for again, never
sent twice.

Bounds: `max_bytes` (segment file sizes) and `max_events`. When a batch does not fit, the
events that fit are stored, in order, and the newest are refused; `append` says how many,
so the caller counts and logs them. Nothing here ever blocks on anything but the disk.

Corruption: every record and every segment header carries a CRC32. A segment whose header
cannot be read is moved to `corrupt/` when the spool opens; a segment with a damaged
record is moved there when it is read, and the records before the damage are kept in
place (same sequence, so order holds). Both are logged as errors with what was lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

from llmops.telemetry.logs import get_logger

_log = get_logger(__name__)

_MAGIC = b"LLMOPSQ1"
_U32 = struct.Struct("<I")
_FRAME = struct.Struct("<II")  # payload length, payload crc32
_SEGMENT = ".seg"
_ACKED = ".acked"
_TRIED = ".tried"
_TMP = ".tmp"
_LOCK = "LOCK"
_CORRUPT = "corrupt"
_MAX_HEADER = 64 * 1024


class SpoolCorruptError(ValueError):
    """A segment's bytes do not match their checksums or framing."""


class SpoolLockedError(RuntimeError):
    """Another process holds the spool directory."""


@dataclass(frozen=True)
class SpooledEvent:
    """What it takes to send one encoded event again: topic, key, value, headers and its id."""

    event_id: str
    topic: str
    key: bytes
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SpoolAppend:
    """How much of a batch the spool took: the first `stored` events; the rest were refused."""

    stored: int
    refused: int


@dataclass(frozen=True)
class SpoolSegment:
    """The not yet acknowledged events of one segment, oldest first, with their indexes."""

    seq: int
    tried_since_ms: int | None
    events: list[tuple[int, SpooledEvent]]


@dataclass
class _SegmentState:
    count: int
    size: int
    acked: set[int]
    tried_since_ms: int | None

    @property
    def pending(self) -> int:
        return self.count - len(self.acked)


def encode_record(event: SpooledEvent) -> bytes:
    """One framed record: lengths and CRC32 first, so a damaged record is detected."""
    meta = json.dumps(
        {"id": event.event_id, "topic": event.topic, "headers": dict(event.headers)},
        separators=(",", ":"),
    ).encode()
    payload = b"".join(
        (_U32.pack(len(meta)), meta, _U32.pack(len(event.key)), event.key, event.value)
    )
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes) -> SpooledEvent:
    (meta_len,) = _U32.unpack_from(payload, 0)
    meta_end = 4 + meta_len
    meta = json.loads(payload[4:meta_end])
    (key_len,) = _U32.unpack_from(payload, meta_end)
    key_end = meta_end + 4 + key_len
    if key_end > len(payload):
        msg = "key runs past the record"
        raise SpoolCorruptError(msg)
    return SpooledEvent(
        event_id=str(meta["id"]),
        topic=str(meta["topic"]),
        key=payload[meta_end + 4 : key_end],
        value=payload[key_end:],
        headers={str(k): str(v) for k, v in meta["headers"].items()},
    )


def _segment_bytes(header: Mapping[str, Any], records: Iterable[bytes]) -> bytes:
    raw = json.dumps(header, separators=(",", ":")).encode()
    return b"".join((_MAGIC, _FRAME.pack(len(raw), zlib.crc32(raw)), raw, *records))


def _read_header(handle: IO[bytes]) -> dict[str, Any]:
    start = handle.read(len(_MAGIC) + _FRAME.size)
    if len(start) < len(_MAGIC) + _FRAME.size or not start.startswith(_MAGIC):
        msg = "not a spool segment (bad magic or truncated header)"
        raise SpoolCorruptError(msg)
    length, crc = _FRAME.unpack_from(start, len(_MAGIC))
    if length > _MAX_HEADER:
        msg = f"header length {length} is implausible"
        raise SpoolCorruptError(msg)
    raw = handle.read(length)
    if len(raw) != length or zlib.crc32(raw) != crc:
        msg = "header checksum mismatch"
        raise SpoolCorruptError(msg)
    header = json.loads(raw)
    if not isinstance(header, dict) or not isinstance(header.get("count"), int):
        msg = "header has no event count"
        raise SpoolCorruptError(msg)
    return header


def _read_records(handle: IO[bytes], count: int) -> tuple[list[SpooledEvent], str | None]:
    """The intact records in order, and what stopped the reading early (None: all read)."""
    events: list[SpooledEvent] = []
    for index in range(count):
        frame = handle.read(_FRAME.size)
        if len(frame) < _FRAME.size:
            return events, f"truncated before record {index}"
        length, crc = _FRAME.unpack(frame)
        payload = handle.read(length)
        if len(payload) != length:
            return events, f"record {index} is truncated"
        if zlib.crc32(payload) != crc:
            return events, f"record {index} fails its checksum"
        try:
            events.append(_decode_payload(payload))
        except (ValueError, KeyError, TypeError, AttributeError, struct.error) as exc:
            return events, f"record {index} is malformed: {exc!r}"
    return events, None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EventSpool:
    """A directory of segment files holding events in the order they were appended.

    Blocking (disk) calls: use it from one thread at a time, e.g. via `asyncio.to_thread`
    from a single task. `open()` takes an exclusive lock on the directory.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_events: int | None = None,
        fsync: bool = True,
    ) -> None:
        if max_bytes <= 0:
            msg = "max_bytes must be positive"
            raise ValueError(msg)
        self.path = path
        self.max_bytes = max_bytes
        self.max_events = max_events
        self._fsync = fsync
        self._segments: dict[int, _SegmentState] = {}
        self._next_seq = 1
        self._lock: IO[bytes] | None = None
        self._lost = 0

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> Self:
        """Lock the directory and index what is in it (headers only; records are read lazily)."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = (self.path / _LOCK).open("a+b")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().decode(errors="replace").strip() or "unknown"
            lock.close()
            msg = (
                f"spool directory {self.path} is in use by another process (pid {holder}); "
                "give every process its own EVENT_SPOOL_PATH"
            )
            raise SpoolLockedError(msg) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n".encode())
        lock.flush()
        self._lock = lock
        self._load()
        return self

    def close(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self) -> None:
        self._segments.clear()
        for stray in self.path.glob(f"*{_TMP}"):
            stray.unlink(missing_ok=True)  # a write interrupted before its rename
        for file in sorted(self.path.glob(f"*{_SEGMENT}")):
            seq = self._seq_of(file)
            if seq is None:
                continue
            try:
                with file.open("rb") as handle:
                    header = _read_header(handle)
            except (OSError, SpoolCorruptError, ValueError) as exc:
                self._quarantine(file, seq, reason=str(exc), kept=0, lost=None)
                continue
            tried = header.get("tried_since_ms")
            marker = self._read_tried(seq)
            if marker is not None:
                tried = marker if tried is None else min(int(tried), marker)
            state = _SegmentState(
                count=int(header["count"]),
                size=file.stat().st_size,
                acked=self._read_acked(seq),
                tried_since_ms=None if tried is None else int(tried),
            )
            if state.pending <= 0:
                self._remove(seq)
                continue
            self._segments[seq] = state
            self._next_seq = max(self._next_seq, seq + 1)
        for orphan in [*self.path.glob(f"*{_ACKED}"), *self.path.glob(f"*{_TRIED}")]:
            seq = self._seq_of(orphan)
            if seq is not None and seq not in self._segments:
                orphan.unlink(missing_ok=True)
                self._next_seq = max(self._next_seq, seq + 1)
        if self._segments:
            _log.info(
                "event spool opened with waiting events",
                path=str(self.path),
                events=self.pending_events,
                bytes=self.size_bytes,
            )

    # -- state ----------------------------------------------------------------------------

    @property
    def pending_events(self) -> int:
        """Events stored and not yet acknowledged by Kafka."""
        return sum(state.pending for state in self._segments.values())

    @property
    def size_bytes(self) -> int:
        return sum(state.size for state in self._segments.values())

    def is_empty(self) -> bool:
        return not self._segments

    def take_lost_events(self) -> int:
        """Events lost to corrupt segments since the last call (for a dropped-events metric)."""
        lost, self._lost = self._lost, 0
        return lost

    # -- writing --------------------------------------------------------------------------

    def append(
        self, events: Sequence[SpooledEvent], *, tried_since_ms: int | None = None
    ) -> SpoolAppend:
        """Store `events` as one durable segment, as many as the bounds allow, oldest first.

        `tried_since_ms`: the events were already handed to a producer at that time (a send
        whose outcome is unknown), so they must be looked for on the topic before a resend.
        """
        if not events:
            return SpoolAppend(0, 0)
        records = [encode_record(event) for event in events]
        header: dict[str, Any] = {"count": 0, "created_ms": int(time.time() * 1000)}
        if tried_since_ms is not None:
            header["tried_since_ms"] = tried_since_ms
        room_bytes = self.max_bytes - self.size_bytes
        room_events = (
            len(records) if self.max_events is None else self.max_events - self.pending_events
        )
        overhead = len(_segment_bytes({**header, "count": len(records)}, ()))
        used, stored = overhead, 0
        for record in records:
            if stored >= room_events or used + len(record) > room_bytes:
                break
            used += len(record)
            stored += 1
        if stored == 0:
            return SpoolAppend(0, len(events))
        header["count"] = stored
        seq = self._next_seq
        self._write_atomically(self._file(seq, _SEGMENT), _segment_bytes(header, records[:stored]))
        self._next_seq += 1
        self._segments[seq] = _SegmentState(
            count=stored,
            size=self._file(seq, _SEGMENT).stat().st_size,
            acked=set(),
            tried_since_ms=tried_since_ms,
        )
        return SpoolAppend(stored, len(events) - stored)

    def mark_tried(self, seq: int, since_ms: int) -> None:
        """Record, durably, that the segment's events are about to be handed to a producer."""
        state = self._segments[seq]
        if state.tried_since_ms is not None:
            return
        self._write_atomically(self._file(seq, _TRIED), f"{since_ms}\n".encode())
        state.tried_since_ms = since_ms

    def ack(self, seq: int, indexes: Iterable[int]) -> None:
        """Forget events Kafka acknowledged (or that were found on the topic)."""
        state = self._segments.get(seq)
        if state is None:
            return
        new = [index for index in indexes if index not in state.acked and index < state.count]
        if not new:
            return
        state.acked.update(new)
        if state.pending <= 0:
            self._remove(seq)
            del self._segments[seq]
            return
        with self._file(seq, _ACKED).open("ab") as handle:
            handle.write(b"".join(_U32.pack(index) for index in new))

    # -- reading --------------------------------------------------------------------------

    def head(self) -> SpoolSegment | None:
        """The oldest segment with waiting events, read and checked; None when empty."""
        while self._segments:
            seq = next(iter(self._segments))
            segment = self._read_segment(seq)
            if segment is not None:
                return segment
        return None

    def tried(self) -> list[SpoolSegment]:
        """Every segment some of whose events may already be on the topic."""
        found = []
        for seq, state in list(self._segments.items()):
            if state.tried_since_ms is None:
                continue
            segment = self._read_segment(seq)
            if segment is not None:
                found.append(segment)
        return found

    def _read_segment(self, seq: int) -> SpoolSegment | None:
        """Read a segment; a damaged one is quarantined and its intact prefix kept."""
        state = self._segments[seq]
        file = self._file(seq, _SEGMENT)
        try:
            with file.open("rb") as handle:
                header = _read_header(handle)
                events, damage = _read_records(handle, int(header["count"]))
        except (OSError, SpoolCorruptError, ValueError) as exc:
            self._quarantine(file, seq, reason=str(exc), kept=0, lost=state.pending)
            del self._segments[seq]
            return None
        if damage is not None:
            lost = sum(1 for index in range(len(events), state.count) if index not in state.acked)
            self._quarantine(file, seq, reason=damage, kept=len(events), lost=lost, copy=True)
            if not events:
                self._remove(seq)
                del self._segments[seq]
                return None
            # Keep the intact prefix under the same sequence: order and ack indexes hold.
            header = {**header, "count": len(events)}
            self._write_atomically(file, _segment_bytes(header, map(encode_record, events)))
            state.count = len(events)
            state.size = file.stat().st_size
            state.acked = {index for index in state.acked if index < state.count}
            if state.pending <= 0:
                self._remove(seq)
                del self._segments[seq]
                return None
        waiting = [(i, event) for i, event in enumerate(events) if i not in state.acked]
        return SpoolSegment(seq, state.tried_since_ms, waiting)

    # -- files ----------------------------------------------------------------------------

    def _file(self, seq: int, suffix: str) -> Path:
        return self.path / f"{seq:020d}{suffix}"

    @staticmethod
    def _seq_of(file: Path) -> int | None:
        stem = file.name.split(".", 1)[0]
        return int(stem) if stem.isdigit() else None

    def _write_atomically(self, target: Path, data: bytes) -> None:
        partial = target.with_name(target.name + _TMP)
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            if self._fsync:
                os.fsync(handle.fileno())
        partial.replace(target)
        if self._fsync:
            _fsync_dir(self.path)

    def _read_acked(self, seq: int) -> set[int]:
        try:
            raw = self._file(seq, _ACKED).read_bytes()
        except FileNotFoundError:
            return set()
        whole = len(raw) - len(raw) % _U32.size  # a torn last write loses one index, no more
        return {index for (index,) in _U32.iter_unpack(raw[:whole])}

    def _read_tried(self, seq: int) -> int | None:
        try:
            return int(self._file(seq, _TRIED).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _remove(self, seq: int) -> None:
        # The segment goes first: a crash part-way leaves orphan markers, never a segment
        # without the `.tried` marker that protects it from a blind resend.
        for suffix in (_SEGMENT, _ACKED, _TRIED):
            self._file(seq, suffix).unlink(missing_ok=True)

    def _quarantine(
        self, file: Path, seq: int, *, reason: str, kept: int, lost: int | None, copy: bool = False
    ) -> None:
        target_dir = self.path / _CORRUPT
        target_dir.mkdir(exist_ok=True)
        target = target_dir / f"{file.name}.{int(time.time() * 1000)}"
        with contextlib.suppress(OSError):
            if copy:
                target.write_bytes(file.read_bytes())
            else:
                file.replace(target)
                for suffix in (_ACKED, _TRIED):
                    self._file(seq, suffix).unlink(missing_ok=True)
        self._lost += lost or 0
        _log.error(
            "corrupt event spool segment quarantined",
            segment=file.name,
            reason=reason,
            events_kept=kept,
            events_lost=lost if lost is not None else "unknown",
            moved_to=str(target),
        )


__all__ = [
    "EventSpool",
    "SpoolAppend",
    "SpoolCorruptError",
    "SpoolLockedError",
    "SpoolSegment",
    "SpooledEvent",
    "encode_record",
]
