"""Mergeable relative-error quantile sketch (DDSketch-style logarithmic buckets).

A value x > 0 lands in bucket i = ceil(log_gamma(x)) with gamma = (1 + a) / (1 - a); the
bucket's representative 2 * gamma**i / (gamma + 1) is within relative accuracy a of every
value in it, so each quantile is within a of the exact value of the same rank. Negative
values use a mirrored store, and magnitudes below `min_value` count as zero.

Quantile rank: `quantile(q)` estimates the element at 0-based rank floor(q * (n - 1)) of the
sorted stream, which is numpy's `quantile(..., method="lower")`.

Memory is bounded: each store spans at most `max_buckets` consecutive indices; when a new
highest bucket would exceed that span, the lowest buckets are collapsed into the lowest kept
one (small values lose accuracy first, the tail quantiles that matter for latency keep it).
The collapse floor depends only on the highest index ever seen, so merging sketches gives the
same state as adding every value to one sketch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_RELATIVE_ACCURACY = 0.005
DEFAULT_MAX_BUCKETS = 2048
DEFAULT_MIN_VALUE = 1e-9


class _Store:
    """Counts per bucket index over a bounded window of consecutive indices."""

    __slots__ = ("bins", "floor", "high", "low", "max_buckets")

    def __init__(self, max_buckets: int) -> None:
        self.max_buckets = max_buckets
        self.bins: dict[int, int] = {}
        self.high = -math.inf  # highest index ever seen: fixes the collapse floor
        self.low = math.inf  # lowest index currently holding a count
        self.floor = -math.inf  # indices below this are counted in it

    def add(self, index: int, count: int) -> None:
        if index > self.high:
            self._raise_high(index)
        elif index < self.floor:
            index = int(self.floor)
        if index < self.low:
            self.low = index
        bins = self.bins
        bins[index] = bins.get(index, 0) + count

    def add_pairs(self, pairs: list[tuple[int, int]]) -> None:
        """`add` for many (index, count) pairs: the window is moved once, to the highest."""
        if not pairs:
            return
        top = max(index for index, _ in pairs)
        if top > self.high:
            self._raise_high(top)
        bins, floor, low = self.bins, self.floor, self.low
        for index, count in pairs:
            if index < floor:
                index = int(floor)
            if index < low:
                low = index
            bins[index] = bins.get(index, 0) + count
        self.low = low

    def _raise_high(self, index: int) -> None:
        """Move the top of the window up, collapsing buckets that fall out of its bottom."""
        self.high = index
        self.floor = index - self.max_buckets + 1
        if self.low < self.floor:
            floor = int(self.floor)
            collapsed = 0
            for key in [key for key in self.bins if key < floor]:
                collapsed += self.bins.pop(key)
            self.bins[floor] = self.bins.get(floor, 0) + collapsed
            self.low = floor

    def merge(self, other: _Store) -> None:
        if other.high > self.high:
            self._raise_high(int(other.high))
        for index, count in other.bins.items():
            self.add(index, count)

    def total(self) -> int:
        return sum(self.bins.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "high": None if math.isinf(self.high) else int(self.high),
            "bins": {str(index): count for index, count in sorted(self.bins.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_buckets: int) -> _Store:
        store = cls(max_buckets)
        high = data.get("high")
        if high is not None:
            store._raise_high(int(high))
        for index, count in data.get("bins", {}).items():
            store.add(int(index), int(count))
        return store


class QuantileSketch:
    """Streaming quantiles with bounded relative error; mergeable and serialisable to a dict."""

    __slots__ = (
        "_gamma",
        "_max",
        "_min",
        "_multiplier",
        "_negative",
        "_positive",
        "_sum",
        "_zero_count",
        "max_buckets",
        "min_value",
        "relative_accuracy",
    )

    def __init__(
        self,
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
        *,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
        min_value: float = DEFAULT_MIN_VALUE,
    ) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy}")
        if max_buckets < 1:
            raise ValueError(f"max_buckets must be positive, got {max_buckets}")
        if min_value <= 0.0:
            raise ValueError(f"min_value must be positive, got {min_value}")
        self.relative_accuracy = relative_accuracy
        self.max_buckets = max_buckets
        self.min_value = min_value
        self._gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        # One multiplication per value instead of a log in base gamma.
        self._multiplier = 1.0 / math.log(self._gamma)
        self._positive = _Store(max_buckets)
        self._negative = _Store(max_buckets)
        self._zero_count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    # ---- adding -------------------------------------------------------------------------

    def add(self, value: float, count: int = 1) -> None:
        """Count `value` `count` times."""
        if count <= 0:
            if count == 0:
                return
            raise ValueError(f"count must not be negative, got {count}")
        if value != value or value in (math.inf, -math.inf):
            raise ValueError(f"cannot add a non-finite value: {value}")
        if value > self.min_value:
            self._positive.add(math.ceil(math.log(value) * self._multiplier), count)
        elif value < -self.min_value:
            self._negative.add(math.ceil(math.log(-value) * self._multiplier), count)
        else:
            self._zero_count += count
        self._sum += value * count
        if value < self._min:
            self._min = value
        if value > self._max:
            self._max = value

    def add_many(self, values: Iterable[float]) -> None:
        """Count every value once: the same as `add` in a loop, about twice as fast."""
        log = math.log
        ceil = math.ceil
        inf = math.inf
        multiplier = self._multiplier
        min_value = self.min_value
        positive = self._positive
        total = 0.0
        lowest, highest = self._min, self._max
        try:
            for value in values:
                if min_value < value < inf:
                    positive.add(ceil(log(value) * multiplier), 1)
                    total += value
                    if value < lowest:
                        lowest = value
                    if value > highest:
                        highest = value
                else:
                    self.add(value)  # zero, negative or invalid: the general path
        finally:
            # Keep sum and extremes consistent with the buckets even when a value is refused.
            self._sum += total
            self._min = min(self._min, lowest)
            self._max = max(self._max, highest)

    @property
    def index_multiplier(self) -> float:
        """A positive value `v` above `min_value` falls in bucket `ceil(log(v) * multiplier)`:
        what a vectorised caller computes for `add_counted`."""
        return self._multiplier

    def add_counted(
        self,
        buckets: Iterable[tuple[int, int]],
        *,
        total: float,
        lowest: float,
        highest: float,
        zeros: int = 0,
    ) -> None:
        """Count values already bucketed elsewhere (numpy, Arrow): `(index, count)` pairs
        of values above `min_value`, `zeros` values at or below it (non-negative values only),
        with the values' sum and extremes."""
        self._positive.add_pairs(list(buckets))
        self._zero_count += zeros
        self._sum += total
        self._min = min(self._min, lowest)
        self._max = max(self._max, highest)

    def merge(self, other: QuantileSketch) -> None:
        """Fold `other` into this sketch; both must share accuracy, bucket bound and min_value."""
        if (other.relative_accuracy, other.max_buckets, other.min_value) != (
            self.relative_accuracy,
            self.max_buckets,
            self.min_value,
        ):
            raise ValueError("cannot merge sketches with different parameters")
        self._positive.merge(other._positive)
        self._negative.merge(other._negative)
        self._zero_count += other._zero_count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def copy(self) -> QuantileSketch:
        """An independent sketch with the same content."""
        return QuantileSketch.from_dict(self.to_dict())

    # ---- reading ------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Number of values added."""
        return self._positive.total() + self._negative.total() + self._zero_count

    @property
    def sum(self) -> float:
        """Exact sum of the values added."""
        return self._sum

    @property
    def min(self) -> float | None:
        """Smallest value added, exact; None when empty."""
        return None if math.isinf(self._min) else self._min

    @property
    def max(self) -> float | None:
        """Largest value added, exact; None when empty."""
        return None if math.isinf(self._max) else self._max

    @property
    def mean(self) -> float | None:
        """Exact mean of the values added; None when empty."""
        count = self.count
        return self._sum / count if count else None

    def quantile(self, q: float) -> float | None:
        """Value at rank floor(q * (n - 1)) within the relative accuracy; None when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        count = self.count
        if count == 0:
            return None
        rank = math.floor(q * (count - 1))
        if rank == 0:
            return self._min  # the extremes are tracked exactly
        if rank == count - 1:
            return self._max
        seen = 0
        for index in sorted(self._negative.bins, reverse=True):
            seen += self._negative.bins[index]
            if seen > rank:
                return self._clamp(-self._representative(index))
        seen += self._zero_count
        if seen > rank:
            return self._clamp(0.0)
        for index in sorted(self._positive.bins):
            seen += self._positive.bins[index]
            if seen > rank:
                return self._clamp(self._representative(index))
        return self.max  # unreachable while counts are consistent

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several quantiles at once."""
        return [self.quantile(q) for q in qs]

    def _representative(self, index: int) -> float:
        return 2.0 * self._gamma**index / (self._gamma + 1.0)

    def _clamp(self, value: float) -> float:
        # A bucket's representative may lie beyond the exact extremes of the stream.
        return min(max(value, self._min), self._max)

    # ---- persistence --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON or a MongoDB document: bucket indices as string keys."""
        return {
            "relative_accuracy": self.relative_accuracy,
            "max_buckets": self.max_buckets,
            "min_value": self.min_value,
            "count": self.count,
            "sum": self._sum,
            "min": self.min,
            "max": self.max,
            "zero_count": self._zero_count,
            "positive": self._positive.to_dict(),
            "negative": self._negative.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantileSketch:
        """Rebuild a sketch written by `to_dict`."""
        sketch = cls(
            float(data["relative_accuracy"]),
            max_buckets=int(data["max_buckets"]),
            min_value=float(data["min_value"]),
        )
        sketch._positive = _Store.from_dict(data.get("positive", {}), sketch.max_buckets)
        sketch._negative = _Store.from_dict(data.get("negative", {}), sketch.max_buckets)
        sketch._zero_count = int(data.get("zero_count", 0))
        sketch._sum = float(data.get("sum", 0.0))
        sketch._min = math.inf if data.get("min") is None else float(data["min"])
        sketch._max = -math.inf if data.get("max") is None else float(data["max"])
        if sketch.count != int(data.get("count", sketch.count)):
            raise ValueError("sketch document is inconsistent: bucket counts do not sum to count")
        return sketch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable: equal by content, not hashable

    def __repr__(self) -> str:
        return (
            f"QuantileSketch(count={self.count}, min={self.min}, max={self.max}, "
            f"relative_accuracy={self.relative_accuracy})"
        )
