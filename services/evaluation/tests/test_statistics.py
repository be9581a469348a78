"""Bootstrap intervals of a mean, and paired comparisons of two runs."""

from __future__ import annotations

import numpy as np
import pytest

from llmops_evaluation.statistics import bootstrap_mean_ci, compare_paired, regression


def test_interval_holds_the_mean_and_is_deterministic_for_a_seed() -> None:
    values = np.random.default_rng(1).random(30).tolist()
    mean, low, high = bootstrap_mean_ci(values)
    assert mean == pytest.approx(sum(values) / len(values))
    assert low < mean < high
    assert bootstrap_mean_ci(values) == (mean, low, high)
    assert bootstrap_mean_ci(values, seed=1) != (mean, low, high)
    _, wide_low, wide_high = bootstrap_mean_ci(values, confidence=0.99)
    assert wide_low <= low
    assert high <= wide_high


def test_interval_narrows_with_more_data() -> None:
    rng = np.random.default_rng(2)
    _, low, high = bootstrap_mean_ci(rng.random(50).tolist())
    # 100x the data: the width shrinks ~10x (1/sqrt(n)); more than 5x is asked
    mean, big_low, big_high = bootstrap_mean_ci(rng.random(5000).tolist())
    assert big_high - big_low < (high - low) / 5
    assert big_low < mean < big_high


def test_large_runs_resample_in_chunks_with_the_same_guarantees() -> None:
    values = np.random.default_rng(3).random(40_000)  # 2000 x 40,000 draws: chunked
    mean, low, high = bootstrap_mean_ci(values)
    assert low < mean < high
    assert high - low < 0.01
    assert bootstrap_mean_ci(values) == (mean, low, high)


def test_one_value_or_equal_values_give_a_zero_width_interval() -> None:
    assert bootstrap_mean_ci([0.7]) == (0.7, 0.7, 0.7)
    assert bootstrap_mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        bootstrap_mean_ci([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_mean_ci([0.1, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean_ci([0.1, 0.2], confidence=95)


BASELINE = {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.9, "e": 0.2, "only-baseline": 1.0}
CANDIDATE = {"a": 0.7, "b": 0.5, "c": 0.1, "d": 0.8, "e": 0.0, "only-candidate": 0.0}


def test_paired_comparison_counts_and_ranks_the_changes() -> None:
    result = compare_paired(BASELINE, CANDIDATE, top=3)
    # deltas on the 5 shared items: a +0.2, b 0, c -0.4, d -0.1, e -0.2
    assert result.items == 5
    assert (result.wins, result.ties, result.losses) == (1, 1, 3)
    assert result.baseline_mean == pytest.approx((0.5 + 0.5 + 0.5 + 0.9 + 0.2) / 5)
    assert result.candidate_mean == pytest.approx((0.7 + 0.5 + 0.1 + 0.8 + 0.0) / 5)
    assert result.delta == pytest.approx(-0.5 / 5)
    assert result.ci_low <= result.delta <= result.ci_high
    # biggest |delta| first; a and e tie at 0.2 (but for float noise) and go by id
    assert [(c.item_id, c.baseline, c.candidate) for c in result.top_changes] == [
        ("c", 0.5, 0.1),
        ("a", 0.5, 0.7),
        ("e", 0.2, 0.0),
    ]
    assert result.top_changes[0].delta == pytest.approx(-0.4)
    assert result.worse_by == pytest.approx(0.1)  # positive: the candidate is worse


def test_lower_is_better_flips_wins_losses_and_the_regression() -> None:
    result = compare_paired(BASELINE, CANDIDATE, higher_is_better=False)
    assert (result.wins, result.ties, result.losses) == (3, 1, 1)
    assert result.worse_by == pytest.approx(-0.1)  # negative: the candidate is better
    assert regression(0.25, higher_is_better=True) == -0.25
    assert regression(0.25, higher_is_better=False) == 0.25


def test_unchanged_items_are_ties_and_never_top_changes() -> None:
    result = compare_paired({"a": 0.3, "b": 0.6}, {"a": 0.3 + 1e-12, "b": 0.6}, top=5)
    assert (result.wins, result.ties, result.losses) == (0, 2, 0)
    assert result.top_changes == ()
    assert (result.delta, result.ci_low, result.ci_high) == pytest.approx((0.0, 0.0, 0.0))


def test_runs_without_a_shared_item_are_refused() -> None:
    with pytest.raises(ValueError, match="no item in common"):
        compare_paired({"x": 1.0}, {"y": 1.0})
    with pytest.raises(ValueError, match="no item in common"):
        compare_paired({}, {})
