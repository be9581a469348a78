"""Confidence intervals and paired comparisons for evaluation scores.

Percentile bootstrap, vectorised with numpy and seeded, so the same scores always give
the same interval (a CI gate must not flip on a rerun of the report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000


def bootstrap_mean_ci(
    values: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of `values` with its percentile bootstrap interval: (mean, low, high)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        msg = "no values to average"
        raise ValueError(msg)
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, min(float(low), mean), max(float(high), mean)


@dataclass(frozen=True)
class ItemDelta:
    item_id: str
    baseline: float
    candidate: float
    delta: float


@dataclass(frozen=True)
class PairedComparison:
    """A candidate's scores against a baseline's on the same items."""

    items: int
    baseline_mean: float
    candidate_mean: float
    delta: float
    ci_low: float
    ci_high: float
    wins: int
    ties: int
    losses: int
    higher_is_better: bool
    top_changes: list[ItemDelta]

    @property
    def worse_by(self) -> float:
        """How much worse the candidate is, in the metric's better direction (negative:
        it is better). A CI gate fails when this exceeds its allowed regression."""
        return -self.delta if self.higher_is_better else self.delta


def compare_paired(
    baseline: Mapping[str, float],
    candidate: Mapping[str, float],
    *,
    higher_is_better: bool = True,
    tie_tolerance: float = 1e-9,
    top: int = 5,
    seed: int = 0,
) -> PairedComparison:
    """Compare on the items both have; the interval is of the mean paired delta."""
    common = sorted(baseline.keys() & candidate.keys())
    if not common:
        msg = "the runs have no item in common"
        raise ValueError(msg)
    base = np.array([baseline[i] for i in common], dtype=np.float64)
    cand = np.array([candidate[i] for i in common], dtype=np.float64)
    deltas = cand - base
    delta, low, high = bootstrap_mean_ci(deltas.tolist(), seed=seed)
    better = deltas if higher_is_better else -deltas
    changes = sorted(
        (
            ItemDelta(i, float(b), float(c), float(d))
            for i, b, c, d in zip(common, base, cand, deltas, strict=True)
        ),
        key=lambda change: (-abs(change.delta), change.item_id),
    )
    return PairedComparison(
        items=len(common),
        baseline_mean=float(base.mean()),
        candidate_mean=float(cand.mean()),
        delta=delta,
        ci_low=low,
        ci_high=high,
        wins=int((better > tie_tolerance).sum()),
        ties=int((np.abs(deltas) <= tie_tolerance).sum()),
        losses=int((better < -tie_tolerance).sum()),
        higher_is_better=higher_is_better,
        top_changes=[change for change in changes[:top] if abs(change.delta) > tie_tolerance],
    )
