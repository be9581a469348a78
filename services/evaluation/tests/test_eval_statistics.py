"""Bootstrap intervals and paired comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from llmops_evaluation.statistics import bootstrap_mean_ci, compare_paired


def test_interval_holds_the_mean_is_deterministic_and_narrows_with_data() -> None:
    rng = np.random.default_rng(1)
    small, large = rng.random(20).tolist(), rng.random(2000).tolist()
    mean, low, high = bootstrap_mean_ci(small)
    assert low <= mean <= high
    assert bootstrap_mean_ci(small) == (mean, low, high)
    _, big_low, big_high = bootstrap_mean_ci(large)
    assert big_high - big_low < (high - low) / 4
    assert bootstrap_mean_ci([0.5, 0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="no values"):
        bootstrap_mean_ci([])


def test_paired_comparison_counts_and_ranks_changes() -> None:
    baseline = {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.9, "only-base": 1.0}
    candidate = {"a": 0.7, "b": 0.5, "c": 0.1, "d": 0.8, "only-cand": 0.0}
    result = compare_paired(baseline, candidate, top=2)
    assert (result.items, result.wins, result.ties, result.losses) == (4, 1, 1, 2)
    assert result.delta == pytest.approx((0.2 + 0 - 0.4 - 0.1) / 4)
    assert result.worse_by == pytest.approx(-result.delta)
    assert [c.item_id for c in result.top_changes] == ["c", "a"]
    assert result.ci_low <= result.delta <= result.ci_high

    lower_better = compare_paired(baseline, candidate, higher_is_better=False)
    assert (lower_better.wins, lower_better.losses) == (2, 1)
    assert lower_better.worse_by == pytest.approx(result.delta)
    with pytest.raises(ValueError, match="no item in common"):
        compare_paired({"x": 1.0}, {"y": 1.0})
