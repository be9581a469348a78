"""Fold a polled batch of `llm.completions` records at once, in Arrow, off the event loop.

A batch of JSON envelopes is parsed by Arrow's JSON reader against an explicit schema of
the fields monitoring reads (the rest is skipped), checked column by column (event type,
schema version, required values, known enums, non-negative timings), then summed per
minute, tenant, model, prompt version and key: the joined key is dictionary-encoded into a
cell index per row, and numpy bincounts add the columns; latency and TTFT are bucketed as
`QuantileSketch` buckets by vectorised arithmetic and counted per cell. The parse and the
kernels release the GIL, so a worker thread folds one batch while the event loop polls
the next.

Rows that fail a check, and records Arrow cannot parse (found by halving a batch that
does not parse), are handed back by position for the per-record path (`stream_facts`),
which accepts what the codec accepts and dead-letters the rest with its reason: this
path never decides that an event is bad.
`test_completion_batches` checks that both paths give the same aggregates.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# pyarrow ships no type information
import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.json as pj  # type: ignore[import-untyped]

from llmops.events.catalog import CacheResult, CallStatus
from llmops_monitoring.drift import REFUSAL_PATTERN, REFUSAL_SCAN_CHARS
from llmops_monitoring.rollups import (
    UNKNOWN,
    Aggregate,
    CellKey,
    CompletionFacts,
    Dimensions,
    Window,
)
from llmops_monitoring.sketch import DEFAULT_MIN_VALUE, QuantileSketch

_STRING = pa.string()
_SCHEMA = pa.schema(
    [
        ("id", _STRING),
        ("type", _STRING),
        ("schema_version", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("tenant", _STRING),
        (
            "data",
            pa.struct(
                [
                    ("completion_id", _STRING),
                    ("api_key_id", _STRING),
                    ("served_model", _STRING),
                    ("prompt", pa.struct([("name", _STRING), ("version", pa.int64())])),
                    ("output", _STRING),
                    (
                        "usage",
                        pa.struct(
                            [("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64())]
                        ),
                    ),
                    ("latency_ms", pa.float64()),
                    ("time_to_first_token_ms", pa.float64()),
                    ("cost_usd", pa.float64()),
                    ("cache", _STRING),
                    ("status", _STRING),
                    ("error", pa.struct([("code", _STRING)])),
                ]
            ),
        ),
    ]
)
_PARSE = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
_READ = pj.ReadOptions(use_threads=True, block_size=1 << 22)
_REQUIRED = (
    "id",
    "time",
    "tenant",
    "data.completion_id",
    "data.api_key_id",
    "data.served_model",
    "data.usage.prompt_tokens",
    "data.usage.completion_tokens",
    "data.latency_ms",
    "data.cost_usd",
    "data.cache",
    "data.status",
)
_KEY_SEPARATOR = "\x1f"
"""Joins a cell's minute and dimensions into one key (a control character, as ids are text)."""
_CACHE_VALUES = pa.array([result.value for result in CacheResult])
_STATUS_VALUES = pa.array([status.value for status in CallStatus])
_MINUTE_US = 60_000_000


class RecentIds:
    """Membership of the last ~`capacity` ids, in two generations of sets (O(1), no LRU).

    Thread-safe: the worker thread folds batches while the event loop settles earlier ones."""

    def __init__(self, capacity: int) -> None:
        self._half = max(capacity // 2, 1)
        self._enabled = capacity > 0
        self._current: set[str] = set()
        self._previous: set[str] = set()
        self._lock = threading.Lock()

    def seen(self, event_id: str) -> bool:
        """Whether `event_id` was seen; remembers it if not."""
        if not self._enabled:
            return False
        with self._lock:
            return self._seen(event_id)

    def first_sightings(self, event_ids: list[str]) -> npt.NDArray[np.bool_]:
        """Per id, whether it is new (not seen before, nor earlier in `event_ids`); remembers
        them. A batch without duplicates, the usual one, is checked by set operations."""
        if not self._enabled:
            return np.ones(len(event_ids), dtype=bool)
        batch = set(event_ids)
        with self._lock:
            if (
                len(batch) == len(event_ids)
                and batch.isdisjoint(self._current)
                and batch.isdisjoint(self._previous)
            ):
                self._remember(batch)
                return np.ones(len(event_ids), dtype=bool)
            return np.fromiter(
                (not self._seen(event_id) for event_id in event_ids),
                dtype=bool,
                count=len(event_ids),
            )

    def forget(self, event_ids: list[str]) -> None:
        """Forget ids whose events were not counted after all (their batch was dropped), so
        they count when they are read again."""
        with self._lock:
            self._current.difference_update(event_ids)
            self._previous.difference_update(event_ids)

    def _seen(self, event_id: str) -> bool:
        if event_id in self._current or event_id in self._previous:
            return True
        self._remember({event_id})
        return False

    def _remember(self, event_ids: set[str]) -> None:
        if len(self._current) >= self._half:
            self._previous, self._current = self._current, set()
        self._current |= event_ids


@dataclass
class BatchFold:
    """What a batch folded into, and which records need the per-record path."""

    cells: dict[CellKey, Aggregate] = field(default_factory=dict)
    unread: list[int] = field(default_factory=list)
    """Positions (in the batch) the Arrow path did not read."""
    read: list[int] = field(default_factory=list)
    """Positions folded here (not refused, not duplicates)."""
    sample_candidates: list[tuple[int, str]] = field(default_factory=list)
    """(position, cell key) of the first `sample_limit` rows of each cell, in batch order:
    the only rows drift samples may come from."""
    duplicates: int = 0
    remembered: list[str] = field(default_factory=list)
    """Ids this fold added to the recent ids: forgotten again if the batch is dropped."""


def fold_completions(values: list[bytes], recent: RecentIds, sample_limit: int = 0) -> BatchFold:
    """Fold JSON `CompletionRecorded` envelopes of the current schema version; name up to
    `sample_limit` rows per cell as drift sample candidates."""
    result = BatchFold()
    if not values:
        return result
    table = _parse(values)
    if table is None:  # one bad record fails the whole parse: halve to find it
        if len(values) == 1:
            result.unread = [0]
            return result
        middle = len(values) // 2
        first = fold_completions(values[:middle], recent, sample_limit)
        second = fold_completions(values[middle:], recent, sample_limit)
        for key, aggregate in second.cells.items():
            if key in first.cells:
                first.cells[key].merge(aggregate)
            else:
                first.cells[key] = aggregate
        first.unread += [middle + position for position in second.unread]
        first.read += [middle + position for position in second.read]
        first.sample_candidates += [(middle + p, k) for p, k in second.sample_candidates]
        first.duplicates += second.duplicates
        first.remembered += second.remembered
        return first
    valid_rows = _valid_rows(table)
    valid = np.asarray(valid_rows.to_numpy(zero_copy_only=False), dtype=bool)
    ids = table.column("id").filter(valid_rows).to_pylist()
    new = recent.first_sightings(ids)
    keep = valid.copy()
    keep[valid] = new
    result.remembered = ids if new.all() else np.asarray(ids, dtype=object)[new].tolist()
    result.unread = np.flatnonzero(~valid).tolist()
    result.read = np.flatnonzero(keep).tolist()
    result.duplicates = int(valid.sum()) - len(result.read)
    rows = table.filter(pa.array(keep, pa.bool_()))
    if rows.num_rows:
        for row, cell_key in _fold_rows(rows, result.cells, sample_limit):
            result.sample_candidates.append((result.read[row], cell_key))
    return result


def _parse(values: list[bytes]) -> Any:
    """The batch as an Arrow table, one row per record; None when Arrow cannot read it."""
    try:
        table = pj.read_json(pa.py_buffer(b"\n".join(values)), _READ, _PARSE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != len(values):  # a record with a raw newline, or an empty one
        return None
    return table.flatten().flatten()


def _valid_rows(table: Any) -> Any:
    valid = pc.and_(
        pc.equal(table.column("type"), "CompletionRecorded"),
        pc.equal(table.column("schema_version"), 1),
    )
    for name in _REQUIRED:
        valid = pc.and_(valid, pc.is_valid(table.column(name)))
    valid = pc.and_(valid, pc.is_in(table.column("data.cache"), value_set=_CACHE_VALUES))
    valid = pc.and_(valid, pc.is_in(table.column("data.status"), value_set=_STATUS_VALUES))
    for name in ("data.latency_ms", "data.cost_usd"):
        valid = pc.and_(valid, pc.greater_equal(table.column(name), 0))
    ttft = table.column("data.time_to_first_token_ms")
    valid = pc.and_(valid, pc.or_kleene(pc.is_null(ttft), pc.greater_equal(ttft, 0)))
    for name in ("data.usage.prompt_tokens", "data.usage.completion_tokens"):
        valid = pc.and_(valid, pc.greater_equal(table.column(name), 0))
    # A prompt is a name and a version, or absent.
    name, version = table.column("data.prompt.name"), table.column("data.prompt.version")
    valid = pc.and_(valid, pc.equal(pc.is_null(name), pc.is_null(version)))
    return pc.fill_null(valid, False)


def _fold_rows(
    rows: Any, cells: dict[CellKey, Aggregate], sample_limit: int
) -> list[tuple[int, str]]:
    """Sum the rows into their minute cells: a cell index per row (dictionary-encoded
    keys), then numpy bincounts; sketches get their buckets counted per cell. Returns the
    first `sample_limit` answered rows of each cell with its key."""
    failed = pc.equal(rows.column("data.status"), CallStatus.ERROR.value)
    opening = pc.utf8_slice_codeunits(rows.column("data.output"), 0, REFUSAL_SCAN_CHARS)
    refused = pc.and_(
        pc.invert(failed),
        pc.fill_null(pc.match_substring_regex(opening, REFUSAL_PATTERN, ignore_case=True), False),
    )
    name, version = rows.column("data.prompt.name"), rows.column("data.prompt.version")
    prompt = pc.if_else(
        pc.is_null(name),
        UNKNOWN,
        pc.binary_join_element_wise(name, pc.cast(version, _STRING), "@"),
    )
    minute = pc.divide(pc.cast(rows.column("time"), pa.int64()), _MINUTE_US)
    key_text = pc.binary_join_element_wise(
        pc.cast(minute, _STRING),
        rows.column("tenant"),
        _or_unknown(rows.column("data.served_model")),
        prompt,
        _or_unknown(rows.column("data.api_key_id")),
        _KEY_SEPARATOR,
    )
    encoded = pc.dictionary_encode(key_text).combine_chunks()
    index = encoded.indices.to_numpy().astype(np.int64)
    cell_keys: list[str] = encoded.dictionary.to_pylist()
    aggregates = [_cell(cells, key) for key in cell_keys]
    size = len(aggregates)

    def total(column: Any) -> npt.NDArray[np.float64]:
        weights = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        return np.asarray(np.bincount(index, weights=weights, minlength=size), dtype=np.float64)

    cache = rows.column("data.cache")
    requests = np.bincount(index, minlength=size)
    sums = {
        "errors": total(failed),
        "refusals": total(refused),
        "prompt_tokens": total(rows.column("data.usage.prompt_tokens")),
        "completion_tokens": total(rows.column("data.usage.completion_tokens")),
        "cache_exact": total(pc.equal(cache, CacheResult.EXACT.value)),
        "cache_semantic": total(pc.equal(cache, CacheResult.SEMANTIC.value)),
    }
    cost = total(rows.column("data.cost_usd"))
    for position, aggregate in enumerate(aggregates):
        aggregate.requests += int(requests[position])
        aggregate.cost_usd += float(cost[position])
        for field_name, values in sums.items():
            setattr(aggregate, field_name, getattr(aggregate, field_name) + round(values[position]))
    failures = np.asarray(failed.to_numpy(zero_copy_only=False), dtype=bool)
    if failures.any():
        codes = pc.fill_null(rows.column("data.error.code"), "unknown").to_numpy(
            zero_copy_only=False
        )
        for position, code in zip(index[failures], codes[failures], strict=True):
            by_code = aggregates[position].errors_by_code
            by_code[code] = by_code.get(code, 0) + 1
    succeeded = ~failures
    for column, pick in (("data.latency_ms", _latency), ("data.time_to_first_token_ms", _ttft)):
        values = rows.column(column)
        valid = succeeded & np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False))
        if valid.any():
            _fold_sketch(values, valid, index, [pick(a) for a in aggregates])
    answered = np.flatnonzero(succeeded)  # failed calls have no answer to sample
    chosen = answered[first_of_each(index[answered], sample_limit)]
    return [(int(row), cell_keys[index[row]]) for row in chosen]


def first_of_each(groups: npt.NDArray[np.int64], limit: int) -> npt.NDArray[np.int64]:
    """Positions of the first `limit` rows of each group, in position order."""
    if limit <= 0 or not groups.size:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, ordered.size])
    rank = np.arange(ordered.size) - np.repeat(starts, sizes)
    return np.sort(order[rank < limit])


def _fold_sketch(
    column: Any,
    valid: npt.NDArray[np.bool_],
    index: npt.NDArray[np.int64],
    sketches: list[QuantileSketch],
) -> None:
    """Count the valid values of `column` into the sketch of each row's cell."""
    multiplier = sketches[0].index_multiplier
    # Arrow's ln, as the per-record path's math.log: the same bucket for the same value.
    bucket_of = pc.ceil(
        pc.multiply(pc.ln(pc.max_element_wise(column, DEFAULT_MIN_VALUE)), multiplier)
    )
    values = np.asarray(pc.fill_null(column, 0.0).to_numpy(zero_copy_only=False))[valid]
    buckets = np.asarray(pc.fill_null(bucket_of, 0.0).to_numpy(zero_copy_only=False))[valid]
    rows_cell = index[valid]
    size = len(sketches)
    positive = values > DEFAULT_MIN_VALUE
    lowest = np.full(size, np.inf)
    highest = np.full(size, -np.inf)
    np.minimum.at(lowest, rows_cell, values)
    np.maximum.at(highest, rows_cell, values)
    totals = np.bincount(rows_cell, weights=values, minlength=size)
    zeros = np.bincount(rows_cell[~positive], minlength=size)
    counted = np.bincount(rows_cell, minlength=size)
    bucket = buckets[positive].astype(np.int64)
    by_cell: list[list[tuple[int, int]]] = [[] for _ in range(size)]
    if bucket.size:
        low = int(bucket.min())
        span = int(bucket.max()) - low + 1
        combined, counts = np.unique(
            rows_cell[positive] * span + (bucket - low), return_counts=True
        )
        for key, count in zip(combined.tolist(), counts.tolist(), strict=True):
            by_cell[key // span].append((key % span + low, count))
    for position, sketch in enumerate(sketches):
        if counted[position]:
            sketch.add_counted(
                by_cell[position],
                total=float(totals[position]),
                lowest=float(lowest[position]),
                highest=float(highest[position]),
                zeros=int(zeros[position]),
            )


def _latency(aggregate: Aggregate) -> QuantileSketch:
    return aggregate.latency_ms


def _ttft(aggregate: Aggregate) -> QuantileSketch:
    return aggregate.ttft_ms


def _cell(cells: dict[CellKey, Aggregate], key_text: str) -> Aggregate:
    minute, tenant, model, prompt, api_key_id = key_text.split(_KEY_SEPARATOR)
    key = CellKey(
        Window.MINUTE,
        datetime.fromtimestamp(int(minute) * 60, UTC),
        Dimensions(tenant, model, prompt, api_key_id),
    )
    aggregate = cells.get(key)
    if aggregate is None:
        aggregate = cells[key] = Aggregate()
    return aggregate


def _or_unknown(column: Any) -> Any:
    return pc.if_else(pc.equal(column, ""), UNKNOWN, column)


def cell_key_text(facts: CompletionFacts) -> str:
    """The cell key of a completion read one by one, as the batch path names it."""
    dims = facts.dimensions
    minute = int(facts.time.timestamp()) // 60
    return _KEY_SEPARATOR.join((str(minute), dims.tenant, dims.model, dims.prompt, dims.api_key_id))


__all__ = ["BatchFold", "RecentIds", "cell_key_text", "first_of_each", "fold_completions"]
