"""Windowed metric rollups: per minute, hour and day, per tenant, model, prompt and API key.

An `Aggregate` holds additive totals and quantile sketches, so aggregates merge exactly
(totals add, sketches merge) whatever order or process produced them. A `RollupBook` folds
observations into cells in memory; its cells are deltas, which storage keeps beside the
earlier ones of the same key and queries merge (`rollup_store`).

Delivery is at least once, so the caller must dedupe events by envelope id before adding
them: nothing here can tell a redelivered event from a new one.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from llmops.events.catalog import CacheResult, CallStatus, CompletionRecorded, PromptRef
from llmops.events.envelope import Envelope
from llmops_monitoring.drift import is_refusal
from llmops_monitoring.sketch import QuantileSketch

UNKNOWN = "-"
"""Dimension value when the event does not say (no managed prompt, no API key)."""

ANY = "*"
"""Dimension value of a cell that sums over that dimension (see `group_cells`)."""

NEGATIVE_FEEDBACK_BELOW = 0.5
"""Feedback scores below this count as negative (thumbs down is 0, a 2-star rating 0.25)."""

LATENCY_QUANTILES = (0.5, 0.95, 0.99)


class Window(StrEnum):
    """Length of a rollup window; windows are aligned to the Unix epoch, so days are UTC days."""

    MINUTE = "1m"
    HOUR = "1h"
    DAY = "1d"

    @property
    def seconds(self) -> int:
        """Length of the window in seconds."""
        return _WINDOW_SECONDS[self]

    @property
    def length(self) -> timedelta:
        """Length of the window."""
        return timedelta(seconds=self.seconds)

    def start_of(self, time: datetime) -> datetime:
        """Start of the window that contains `time` (UTC)."""
        epoch_seconds = math.floor(_utc(time).timestamp())
        return datetime.fromtimestamp(epoch_seconds - epoch_seconds % self.seconds, UTC)


_WINDOW_SECONDS = {Window.MINUTE: 60, Window.HOUR: 3_600, Window.DAY: 86_400}


@dataclass(frozen=True, slots=True)
class Dimensions:
    """What a cell is about: tenant, served model, prompt (`name@version`) and API key."""

    tenant: str
    model: str = UNKNOWN
    prompt: str = UNKNOWN
    api_key_id: str = UNKNOWN

    def coarsen(self, keep: Collection[str]) -> Dimensions:
        """These dimensions with every one not named in `keep` replaced by `ANY`."""
        unknown = set(keep) - set(DIMENSION_NAMES)
        if unknown:
            raise ValueError(f"unknown dimensions {sorted(unknown)}; known: {DIMENSION_NAMES}")
        return Dimensions(
            **{name: getattr(self, name) if name in keep else ANY for name in DIMENSION_NAMES}
        )

    def to_dict(self) -> dict[str, str]:
        """Plain dict, one string per dimension."""
        return {name: getattr(self, name) for name in DIMENSION_NAMES}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dimensions:
        """Read what `to_dict` wrote."""
        return cls(**{name: str(data.get(name, UNKNOWN)) for name in DIMENSION_NAMES})


DIMENSION_NAMES: tuple[str, ...] = ("tenant", "model", "prompt", "api_key_id")


def prompt_label(prompt: PromptRef | None) -> str:
    """The prompt dimension of a completion: `name@version`, or `-` for raw messages."""
    return UNKNOWN if prompt is None else f"{prompt.name}@{prompt.version}"


@dataclass(frozen=True, slots=True)
class CellKey:
    """Identity of a rollup cell: one window instance and one set of dimensions."""

    window: Window
    start: datetime
    dimensions: Dimensions

    @property
    def end(self) -> datetime:
        """First instant after the window."""
        return self.start + self.window.length

    def cell_id(self) -> str:
        """Deterministic id for storage upserts, e.g. `1m|2025-01-01T00:00:00Z|acme|gpt|-|key1`."""
        parts = (self.window.value, _iso(self.start), *self.dimensions.to_dict().values())
        return "|".join(parts)

    def to_dict(self) -> dict[str, str]:
        """Window, window start (ISO-8601 UTC, sorts as text) and the dimensions."""
        return {"window": self.window.value, "window_start": _iso(self.start)} | (
            self.dimensions.to_dict()
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellKey:
        """Read what `to_dict` wrote."""
        return cls(
            window=Window(data["window"]),
            start=_parse_iso(str(data["window_start"])),
            dimensions=Dimensions.from_dict(data),
        )


@dataclass(frozen=True, slots=True)
class CompletionFacts:
    """What a rollup needs from one completion event, in plain values."""

    time: datetime
    dimensions: Dimensions
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cache: CacheResult
    failed: bool
    error_code: str | None = None
    refused: bool = False


def completion_facts(envelope: Envelope[CompletionRecorded]) -> CompletionFacts:
    """Pick the rollup fields out of a `CompletionRecorded` event and its envelope."""
    event = envelope.data
    failed = event.status is CallStatus.ERROR
    return CompletionFacts(
        time=envelope.time,
        dimensions=Dimensions(
            tenant=envelope.tenant,
            model=event.served_model or UNKNOWN,
            prompt=prompt_label(event.prompt),
            api_key_id=event.api_key_id or UNKNOWN,
        ),
        latency_ms=event.latency_ms,
        ttft_ms=event.time_to_first_token_ms,
        prompt_tokens=event.usage.prompt_tokens,
        completion_tokens=event.usage.completion_tokens,
        cost_usd=event.cost_usd,
        cache=event.cache,
        failed=failed,
        error_code=event.error.code if event.error is not None else None,
        refused=not failed and is_refusal(event.output),
    )


@dataclass(slots=True)
class ScoreTotals:
    """Running count and sum of one evaluation metric."""

    count: int = 0
    total: float = 0.0

    @property
    def mean(self) -> float | None:
        """Mean score; None without scores."""
        return self.total / self.count if self.count else None


@dataclass(slots=True)
class Aggregate:
    """Additive totals and sketches of one cell; merging two gives the cell of both streams."""

    requests: int = 0
    errors: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    refusals: int = 0
    latency_ms: QuantileSketch = field(default_factory=QuantileSketch)
    ttft_ms: QuantileSketch = field(default_factory=QuantileSketch)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cache_exact: int = 0
    cache_semantic: int = 0
    scores: dict[str, ScoreTotals] = field(default_factory=dict)
    feedback_count: int = 0
    feedback_score_sum: float = 0.0
    feedback_negative: int = 0
    ingest_documents: int = 0
    ingest_chunks: int = 0
    ingest_failed: int = 0

    # ---- adding -------------------------------------------------------------------------

    def add_completion(
        self,
        *,
        latency_ms: float,
        ttft_ms: float | None,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        cache: CacheResult,
        failed: bool,
        error_code: str | None = None,
        refused: bool = False,
    ) -> None:
        """Count one chat completion.

        Latency and TTFT sketches take successful calls only, so a burst of fast rejections
        does not make latency look better; tokens and cost count every call.
        """
        self.requests += 1
        if failed:
            self.errors += 1
            code = error_code or "unknown"
            self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1
        else:
            self.latency_ms.add(latency_ms)
            if ttft_ms is not None:
                self.ttft_ms.add(ttft_ms)
        if refused:
            self.refusals += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost_usd += cost_usd
        if cache is CacheResult.EXACT:
            self.cache_exact += 1
        elif cache is CacheResult.SEMANTIC:
            self.cache_semantic += 1

    def add_score(self, metric: str, value: float) -> None:
        """Count one evaluation score (online or offline) of `metric`."""
        totals = self.scores.get(metric)
        if totals is None:
            totals = self.scores[metric] = ScoreTotals()
        totals.count += 1
        totals.total += value

    def add_feedback(self, score: float) -> None:
        """Count one feedback score in [0, 1] (`FeedbackRecorded.score`).

        Feed only first records (`created`), or an updated feedback is counted twice.
        """
        self.feedback_count += 1
        self.feedback_score_sum += score
        if score < NEGATIVE_FEEDBACK_BELOW:
            self.feedback_negative += 1

    def add_ingest(self, *, documents: int = 0, chunks: int = 0, failed: int = 0) -> None:
        """Count ingestion throughput: documents done, chunks produced, documents failed."""
        self.ingest_documents += documents
        self.ingest_chunks += chunks
        self.ingest_failed += failed

    def merge(self, other: Aggregate) -> None:
        """Fold `other` into this aggregate."""
        for name in _ADDITIVE_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for code, count in other.errors_by_code.items():
            self.errors_by_code[code] = self.errors_by_code.get(code, 0) + count
        self.latency_ms.merge(other.latency_ms)
        self.ttft_ms.merge(other.ttft_ms)
        for metric, totals in other.scores.items():
            mine = self.scores.setdefault(metric, ScoreTotals())
            mine.count += totals.count
            mine.total += totals.total

    def copy(self) -> Aggregate:
        """An independent aggregate with the same content."""
        return Aggregate.from_dict(self.to_dict())

    # ---- derived ------------------------------------------------------------------------

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def error_rate(self) -> float | None:
        """Failed calls over all calls; None without calls."""
        return _ratio(self.errors, self.requests)

    @property
    def cache_hit_rate(self) -> float | None:
        """Exact and semantic cache hits over all calls."""
        return _ratio(self.cache_exact + self.cache_semantic, self.requests)

    @property
    def refusal_rate(self) -> float | None:
        """Answers that refuse over successful calls."""
        return _ratio(self.refusals, self.requests - self.errors)

    @property
    def mean_cost_usd(self) -> float | None:
        """Cost per call."""
        return self.cost_usd / self.requests if self.requests else None

    @property
    def feedback_mean(self) -> float | None:
        """Mean feedback score in [0, 1]."""
        return self.feedback_score_sum / self.feedback_count if self.feedback_count else None

    @property
    def negative_feedback_rate(self) -> float | None:
        """Share of feedback scored below `NEGATIVE_FEEDBACK_BELOW`."""
        return _ratio(self.feedback_negative, self.feedback_count)

    @property
    def ingest_failure_rate(self) -> float | None:
        """Failed documents over documents done plus failed."""
        return _ratio(self.ingest_failed, self.ingest_documents + self.ingest_failed)

    def score_mean(self, metric: str) -> float | None:
        """Mean of one evaluation metric; None without scores for it."""
        totals = self.scores.get(metric)
        return None if totals is None else totals.mean

    def summary(self) -> dict[str, float | None]:
        """Every metric by name: totals, rates, latency and TTFT quantiles, score means.

        The names are what alert rules refer to (`AlertRule.metric`).
        """
        values: dict[str, float | None] = {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "refusals": self.refusals,
            "refusal_rate": self.refusal_rate,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "mean_cost_usd": self.mean_cost_usd,
            "cache_hits": self.cache_exact + self.cache_semantic,
            "cache_hit_rate": self.cache_hit_rate,
            "latency_mean_ms": self.latency_ms.mean,
            "ttft_mean_ms": self.ttft_ms.mean,
            "feedback_count": self.feedback_count,
            "feedback_mean": self.feedback_mean,
            "negative_feedback_rate": self.negative_feedback_rate,
            "ingest_documents": self.ingest_documents,
            "ingest_chunks": self.ingest_chunks,
            "ingest_failed": self.ingest_failed,
            "ingest_failure_rate": self.ingest_failure_rate,
        }
        for q in LATENCY_QUANTILES:
            suffix = f"p{round(q * 100)}_ms"
            values[f"latency_{suffix}"] = self.latency_ms.quantile(q)
            values[f"ttft_{suffix}"] = self.ttft_ms.quantile(q)
        for metric, totals in sorted(self.scores.items()):
            values[f"score:{metric}"] = totals.mean
        return values

    def metric(self, name: str) -> float | None:
        """One metric of `summary` by name; None when it has no value (no data)."""
        if name.startswith("score:"):
            return self.score_mean(name.removeprefix("score:"))
        summary = self.summary()
        if name not in summary:
            raise KeyError(f"unknown rollup metric {name!r}")
        return summary[name]

    # ---- persistence --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON or MongoDB; free-form names (error codes, metrics) are values,
        never keys, so a dot or dollar in them cannot break a document.
        """
        data: dict[str, Any] = {name: getattr(self, name) for name in _ADDITIVE_FIELDS}
        data["errors_by_code"] = [
            {"code": code, "count": count} for code, count in sorted(self.errors_by_code.items())
        ]
        data["latency_ms"] = self.latency_ms.to_dict()
        data["ttft_ms"] = self.ttft_ms.to_dict()
        data["scores"] = [
            {"metric": metric, "count": totals.count, "sum": totals.total}
            for metric, totals in sorted(self.scores.items())
        ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Aggregate:
        """Read what `to_dict` wrote."""
        aggregate = cls()
        for name in _ADDITIVE_FIELDS:
            kind = type(getattr(aggregate, name))
            setattr(aggregate, name, kind(data.get(name, 0)))
        aggregate.errors_by_code = {
            str(row["code"]): int(row["count"]) for row in data.get("errors_by_code", [])
        }
        if "latency_ms" in data:
            aggregate.latency_ms = QuantileSketch.from_dict(data["latency_ms"])
        if "ttft_ms" in data:
            aggregate.ttft_ms = QuantileSketch.from_dict(data["ttft_ms"])
        aggregate.scores = {
            str(row["metric"]): ScoreTotals(int(row["count"]), float(row["sum"]))
            for row in data.get("scores", [])
        }
        return aggregate


_NON_ADDITIVE = {"errors_by_code", "latency_ms", "ttft_ms", "scores"}
_ADDITIVE_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(Aggregate) if f.name not in _NON_ADDITIVE
)


@dataclass(slots=True)
class RollupCell:
    """One stored rollup: its key and its aggregate."""

    key: CellKey
    aggregate: Aggregate = field(default_factory=Aggregate)

    def merge(self, other: RollupCell) -> None:
        """Fold a cell with the same key into this one (a late partial, another replica's)."""
        if other.key != self.key:
            raise ValueError(f"cannot merge cell {other.key.cell_id()} into {self.key.cell_id()}")
        self.aggregate.merge(other.aggregate)

    def to_dict(self) -> dict[str, Any]:
        """One document: `cell_id`, the key fields and the aggregate's fields."""
        return {"cell_id": self.key.cell_id()} | self.key.to_dict() | self.aggregate.to_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RollupCell:
        """Read what `to_dict` wrote (extra fields such as a storage `_id` are ignored)."""
        return cls(key=CellKey.from_dict(data), aggregate=Aggregate.from_dict(data))


def group_cells(cells: Iterable[RollupCell], keep: Collection[str]) -> list[RollupCell]:
    """Merge cells that agree on window, start and the dimensions in `keep`.

    The others become `ANY`: `keep={"tenant"}` over day cells gives cost per tenant per day.
    """
    grouped: dict[CellKey, RollupCell] = {}
    for cell in cells:
        key = replace(cell.key, dimensions=cell.key.dimensions.coarsen(keep))
        target = grouped.get(key)
        if target is None:
            target = grouped[key] = RollupCell(key)
        target.aggregate.merge(cell.aggregate)
    return sorted(grouped.values(), key=lambda cell: cell.key.cell_id())


class RollupBook:
    """Cells of the given windows in memory; each observation goes to all of them."""

    def __init__(self, windows: Iterable[Window] = tuple(Window)) -> None:
        self.windows: tuple[Window, ...] = tuple(windows)
        if not self.windows:
            raise ValueError("a rollup book needs at least one window")
        self._cells: dict[CellKey, Aggregate] = {}

    def _aggregates(self, time: datetime, dimensions: Dimensions) -> Iterator[Aggregate]:
        for window in self.windows:
            key = CellKey(window, window.start_of(time), dimensions)
            aggregate = self._cells.get(key)
            if aggregate is None:
                aggregate = self._cells[key] = Aggregate()
            yield aggregate

    def add_completion(self, facts: CompletionFacts) -> None:
        """Count one completion in its cell of every window."""
        for aggregate in self._aggregates(facts.time, facts.dimensions):
            aggregate.add_completion(
                latency_ms=facts.latency_ms,
                ttft_ms=facts.ttft_ms,
                prompt_tokens=facts.prompt_tokens,
                completion_tokens=facts.completion_tokens,
                cost_usd=facts.cost_usd,
                cache=facts.cache,
                failed=facts.failed,
                error_code=facts.error_code,
                refused=facts.refused,
            )

    def add_score(
        self, *, time: datetime, dimensions: Dimensions, metric: str, value: float
    ) -> None:
        """Count one evaluation score in every window."""
        for aggregate in self._aggregates(time, dimensions):
            aggregate.add_score(metric, value)

    def add_feedback(self, *, time: datetime, dimensions: Dimensions, score: float) -> None:
        """Count one feedback score in every window."""
        for aggregate in self._aggregates(time, dimensions):
            aggregate.add_feedback(score)

    def add_ingest(
        self,
        *,
        time: datetime,
        tenant: str,
        documents: int = 0,
        chunks: int = 0,
        failed: int = 0,
    ) -> None:
        """Count ingestion throughput for a tenant in every window."""
        for aggregate in self._aggregates(time, Dimensions(tenant=tenant)):
            aggregate.add_ingest(documents=documents, chunks=chunks, failed=failed)

    def absorb(self, cells: Mapping[CellKey, Aggregate]) -> None:
        """Fold aggregates built elsewhere (a columnar batch) into the book's cells."""
        for key, aggregate in cells.items():
            mine = self._cells.get(key)
            if mine is None:
                self._cells[key] = aggregate
            else:
                mine.merge(aggregate)

    def cells(self) -> list[RollupCell]:
        """The cells themselves, not copies: for a book nothing adds to any more."""
        return [RollupCell(key, self._cells[key]) for key in sorted(self._cells, key=_order)]


def _order(key: CellKey) -> tuple[datetime, int, str]:
    return (key.start, key.window.seconds, key.cell_id())


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _utc(time: datetime) -> datetime:
    if time.tzinfo is None:
        raise ValueError(f"naive datetime {time!r}: rollups need timezone-aware times")
    return time.astimezone(UTC)


def _iso(time: datetime) -> str:
    return _utc(time).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def with_coarser_windows(
    cells: Iterable[RollupCell], windows: Iterable[Window]
) -> list[RollupCell]:
    """`cells` plus, for each of `windows`, their merge into that window's cells (e.g. the hour
    and day cells of minute cells), every aggregate a new object."""
    cells = list(cells)
    derived: dict[CellKey, RollupCell] = {}
    for window in windows:
        for cell in cells:
            key = CellKey(window, window.start_of(cell.key.start), cell.key.dimensions)
            target = derived.get(key)
            if target is None:
                target = derived[key] = RollupCell(key)
            target.aggregate.merge(cell.aggregate)
    return cells + sorted(derived.values(), key=lambda cell: _order(cell.key))
