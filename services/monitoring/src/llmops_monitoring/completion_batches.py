"""Fold a polled batch of `llm.completions` records at once, in Arrow, off the event loop.

A batch of JSON envelopes is parsed by Arrow's JSON reader against an explicit schema of
the fields monitoring reads (the rest is skipped), checked column by column (event type,
schema version, required values, known enums, non-negative timings), then grouped per
minute, tenant, model, prompt version and key with Arrow's hash aggregation; latency and
TTFT are bucketed as `QuantileSketch` buckets by vectorised arithmetic. The parse and the
kernels release the GIL, so a worker thread folds one batch while the event loop polls
the next.

Rows that fail a check, and records Arrow cannot parse (found by halving a batch that
does not parse), are handed back by position for the per-record path (`stream_facts`),
which accepts what the codec accepts and dead-letters the rest with its reason: this
path never decides that an event is bad.
`test_completion_batches` checks that both paths give the same aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# pyarrow ships no type information
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.json as pj  # type: ignore[import-untyped]

from llmops.events.catalog import CacheResult, CallStatus
from llmops_monitoring.drift import REFUSAL_PATTERN, REFUSAL_SCAN_CHARS
from llmops_monitoring.rollups import UNKNOWN, Aggregate, CellKey, Dimensions, Window
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
_READ = pj.ReadOptions(use_threads=False, block_size=1 << 26)
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
_KEYS = ["minute", "tenant", "model", "prompt", "api_key_id"]
_CACHE_VALUES = pa.array([result.value for result in CacheResult])
_STATUS_VALUES = pa.array([status.value for status in CallStatus])
_MINUTE_US = 60_000_000


class RecentIds:
    """Membership of the last ~`capacity` ids, in two generations of sets (O(1), no LRU)."""

    def __init__(self, capacity: int) -> None:
        self._half = max(capacity // 2, 1)
        self._enabled = capacity > 0
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def seen(self, event_id: str) -> bool:
        """Whether `event_id` was seen; remembers it if not."""
        if not self._enabled:
            return False
        if event_id in self._current or event_id in self._previous:
            return True
        if len(self._current) >= self._half:
            self._previous, self._current = self._current, set()
        self._current.add(event_id)
        return False

    def clear(self) -> None:
        self._current.clear()
        self._previous.clear()


@dataclass
class BatchFold:
    """What a batch folded into, and which records need the per-record path."""

    cells: dict[CellKey, Aggregate] = field(default_factory=dict)
    unread: list[int] = field(default_factory=list)
    """Positions (in the batch) the Arrow path did not read."""
    read: list[int] = field(default_factory=list)
    """Positions folded here (not duplicates), e.g. to take drift samples from."""
    completion_ids: list[str] = field(default_factory=list)
    """Completion id of each position in `read`."""
    duplicates: int = 0


def fold_completions(values: list[bytes], recent: RecentIds) -> BatchFold:
    """Fold JSON `CompletionRecorded` envelopes of the current schema version."""
    result = BatchFold()
    if not values:
        return result
    table = _parse(values)
    if table is None:  # one bad record fails the whole parse: halve to find it
        if len(values) == 1:
            result.unread = [0]
            return result
        middle = len(values) // 2
        first = fold_completions(values[:middle], recent)
        second = fold_completions(values[middle:], recent)
        for key, aggregate in second.cells.items():
            if key in first.cells:
                first.cells[key].merge(aggregate)
            else:
                first.cells[key] = aggregate
        first.unread += [middle + position for position in second.unread]
        first.read += [middle + position for position in second.read]
        first.completion_ids += second.completion_ids
        first.duplicates += second.duplicates
        return first
    valid = _valid_rows(table).to_pylist()
    ids = table.column("id").to_pylist()
    completion_ids = table.column("data.completion_id").to_pylist()
    keep: list[bool] = []
    for position, (ok, event_id) in enumerate(zip(valid, ids, strict=True)):
        if not ok:
            result.unread.append(position)
            keep.append(False)
        elif recent.seen(event_id):
            result.duplicates += 1
            keep.append(False)
        else:
            result.read.append(position)
            result.completion_ids.append(completion_ids[position])
            keep.append(True)
    rows = table.filter(pa.array(keep, pa.bool_()))
    if rows.num_rows:
        _fold_rows(rows, result.cells)
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


def _fold_rows(rows: Any, cells: dict[CellKey, Aggregate]) -> None:
    failed = pc.equal(rows.column("data.status"), CallStatus.ERROR.value)
    output = rows.column("data.output")
    opening = pc.utf8_slice_codeunits(
        pc.replace_substring(output, "\u2019", "'"), 0, REFUSAL_SCAN_CHARS
    )
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
    cache = rows.column("data.cache")
    keyed = pa.table(
        {
            "minute": pc.divide(pc.cast(rows.column("time"), pa.int64()), _MINUTE_US),
            "tenant": rows.column("tenant"),
            "model": _or_unknown(rows.column("data.served_model")),
            "prompt": prompt,
            "api_key_id": _or_unknown(rows.column("data.api_key_id")),
            "failed": pc.cast(failed, pa.int64()),
            "refused": pc.cast(refused, pa.int64()),
            "prompt_tokens": rows.column("data.usage.prompt_tokens"),
            "completion_tokens": rows.column("data.usage.completion_tokens"),
            "cost_usd": rows.column("data.cost_usd"),
            "exact": pc.cast(pc.equal(cache, CacheResult.EXACT.value), pa.int64()),
            "semantic": pc.cast(pc.equal(cache, CacheResult.SEMANTIC.value), pa.int64()),
            "latency_ms": rows.column("data.latency_ms"),
            "ttft_ms": rows.column("data.time_to_first_token_ms"),
            "error_code": pc.fill_null(rows.column("data.error.code"), "unknown"),
        }
    )
    totals = keyed.group_by(_KEYS, use_threads=False).aggregate(
        [
            ("failed", "count"),
            ("failed", "sum"),
            ("refused", "sum"),
            ("prompt_tokens", "sum"),
            ("completion_tokens", "sum"),
            ("cost_usd", "sum"),
            ("exact", "sum"),
            ("semantic", "sum"),
        ]
    )
    for row in totals.to_pylist():
        aggregate = _cell(cells, row)
        aggregate.requests += row["failed_count"]
        aggregate.errors += row["failed_sum"]
        aggregate.refusals += row["refused_sum"]
        aggregate.prompt_tokens += row["prompt_tokens_sum"]
        aggregate.completion_tokens += row["completion_tokens_sum"]
        aggregate.cost_usd += row["cost_usd_sum"]
        aggregate.cache_exact += row["exact_sum"]
        aggregate.cache_semantic += row["semantic_sum"]
    errors = keyed.filter(pc.equal(keyed.column("failed"), 1))
    if errors.num_rows:
        by_code = errors.group_by([*_KEYS, "error_code"], use_threads=False).aggregate(
            [("failed", "count")]
        )
        for row in by_code.to_pylist():
            codes = _cell(cells, row).errors_by_code
            codes[row["error_code"]] = codes.get(row["error_code"], 0) + row["failed_count"]
    succeeded = keyed.filter(pc.equal(keyed.column("failed"), 0))
    _fold_sketch(succeeded, "latency_ms", cells, lambda a: a.latency_ms)
    _fold_sketch(succeeded, "ttft_ms", cells, lambda a: a.ttft_ms)


def _fold_sketch(rows: Any, column: str, cells: dict[CellKey, Aggregate], pick: Any) -> None:
    """Bucket `column` of `rows` (non-null values) into each cell's sketch."""
    rows = rows.filter(pc.is_valid(rows.column(column)))
    if not rows.num_rows:
        return
    values = rows.column(column)
    sample: QuantileSketch = QuantileSketch()
    positive = pc.greater(values, DEFAULT_MIN_VALUE)
    index = pc.cast(
        pc.ceil(
            pc.multiply(
                pc.ln(pc.max_element_wise(values, DEFAULT_MIN_VALUE)), sample.index_multiplier
            )
        ),
        pa.int64(),
    )
    bucketed = (
        rows.select(_KEYS)
        .append_column("bucket", index)
        .append_column("positive", pc.cast(positive, pa.int64()))
        .append_column("value", values)
    )
    stats = bucketed.group_by(_KEYS, use_threads=False).aggregate(
        [
            ("value", "sum"),
            ("value", "min"),
            ("value", "max"),
            ("positive", "count"),
            ("positive", "sum"),
        ]
    )
    buckets: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    counted = bucketed.filter(positive).group_by([*_KEYS, "bucket"], use_threads=False)
    for row in counted.aggregate([("positive", "count")]).to_pylist():
        key = tuple(row[name] for name in _KEYS)
        buckets.setdefault(key, []).append((row["bucket"], row["positive_count"]))
    for row in stats.to_pylist():
        key = tuple(row[name] for name in _KEYS)
        pick(_cell(cells, row)).add_counted(
            buckets.get(key, []),
            total=row["value_sum"],
            lowest=row["value_min"],
            highest=row["value_max"],
            zeros=row["positive_count"] - row["positive_sum"],
        )


def _cell(cells: dict[CellKey, Aggregate], row: dict[str, Any]) -> Aggregate:
    key = CellKey(
        Window.MINUTE,
        datetime.fromtimestamp(row["minute"] * 60, UTC),
        Dimensions(row["tenant"], row["model"], row["prompt"], row["api_key_id"]),
    )
    aggregate = cells.get(key)
    if aggregate is None:
        aggregate = cells[key] = Aggregate()
    return aggregate


def _or_unknown(column: Any) -> Any:
    return pc.if_else(pc.equal(column, ""), UNKNOWN, column)


__all__ = ["BatchFold", "RecentIds", "fold_completions"]
