"""Confidence intervals and paired comparisons for evaluation scores.

Percentile bootstrap, vectorised with numpy and seeded, so the same scores always give
the same interval: a CI gate must not flip when the report is computed again. Two runs
are compared item by item (paired), which removes the spread between easy and hard
items from the uncertainty of the difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RESAMPLES = 2000
_MAX_DRAWS_PER_CHUNK = 1 << 22
"""Resampled indices held at once (32 MiB): large runs resample in chunks."""


def bootstrap_mean_ci(
    values: Sequence[float] | npt.NDArray[np.float64],
    *,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of `values` with its percentile bootstrap interval: (mean, low, high).

    One value, or values all equal, give a zero-width interval. Raises `ValueError` for
    no values, values that are not finite, or a confidence outside (0, 1).
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        msg = "no values to average"
        raise ValueError(msg)
    if not np.isfinite(data).all():
        msg = "values must be finite numbers"
        raise ValueError(msg)
    if not 0 < confidence < 1:
        msg = f"confidence must be between 0 and 1, got {confidence}"
        raise ValueError(msg)
    if resamples < 1:
        msg = f"resamples must be positive, got {resamples}"
        raise ValueError(msg)
    mean = float(data.mean())
    if data.size == 1 or bool(np.all(data == data[0])):
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    rows = max(1, _MAX_DRAWS_PER_CHUNK // data.size)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        draws = rng.integers(0, data.size, size=(stop - start, data.size))
        means[start:stop] = data[draws].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    # The resampled means bracket the sample mean except in tiny, skewed samples; a
    # report must never show a mean outside its own interval.
    return mean, min(float(low), mean), max(float(high), mean)


@dataclass(frozen=True)
class ItemDelta:
    """One item's score in both runs; `delta` is candidate minus baseline."""

    item_id: str
    baseline: float
    candidate: float
    delta: float


@dataclass(frozen=True)
class PairedComparison:
    """A candidate's scores against a baseline's on the items both have.

    `delta`, `ci_low` and `ci_high` are the mean paired difference (candidate minus
    baseline) and its bootstrap interval, in the metric's own units and sign. Wins,
    ties and losses are the candidate's, in the metric's better direction.
    """

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
    top_changes: tuple[ItemDelta, ...]

    @property
    def worse_by(self) -> float:
        """How much worse the candidate is on average, in the metric's better direction
        (negative: it is better). A CI gate fails when this exceeds its allowed
        regression."""
        return regression(self.delta, higher_is_better=self.higher_is_better)


def regression(delta: float, *, higher_is_better: bool) -> float:
    """A candidate-minus-baseline difference as "worse by": positive when the candidate
    is worse, whichever direction the metric improves in."""
    return -delta if higher_is_better else delta


def compare_paired(
    baseline: Mapping[str, float],
    candidate: Mapping[str, float],
    *,
    higher_is_better: bool = True,
    tie_tolerance: float = 1e-9,
    top: int = 5,
    seed: int = 0,
) -> PairedComparison:
    """Compare two runs' scores on the item ids both have.

    Differences within `tie_tolerance` are ties; `top_changes` holds up to `top` items
    whose score changed most (by |delta|, then item id), ties left out. Raises
    `ValueError` when the runs share no item.
    """
    if top < 0 or tie_tolerance < 0:
        msg = f"top and tie_tolerance must not be negative, got {top} and {tie_tolerance}"
        raise ValueError(msg)
    common = sorted(baseline.keys() & candidate.keys())
    if not common:
        msg = "the runs have no item in common"
        raise ValueError(msg)
    base = np.array([baseline[item] for item in common], dtype=np.float64)
    cand = np.array([candidate[item] for item in common], dtype=np.float64)
    deltas = cand - base
    delta, low, high = bootstrap_mean_ci(deltas, seed=seed)
    improvement = deltas if higher_is_better else -deltas
    changed = np.flatnonzero(np.abs(deltas) > tie_tolerance)
    # Rounded, so changes equal but for float noise (0.7 - 0.5 vs 0.2 - 0.0) go by id.
    size: list[float] = np.abs(deltas).round(12).tolist()
    ranked = sorted(changed.tolist(), key=lambda row: (-size[row], common[row]))
    return PairedComparison(
        items=len(common),
        baseline_mean=float(base.mean()),
        candidate_mean=float(cand.mean()),
        delta=delta,
        ci_low=low,
        ci_high=high,
        wins=int((improvement > tie_tolerance).sum()),
        ties=len(common) - changed.size,
        losses=int((improvement < -tie_tolerance).sum()),
        higher_is_better=higher_is_better,
        top_changes=tuple(
            ItemDelta(common[row], float(base[row]), float(cand[row]), float(deltas[row]))
            for row in ranked[:top]
        ),
    )
