"""Drift checks: each flags a shifted stream and stays quiet on a same-distribution one.

Every stream comes from a fixed seed and every permutation test is seeded, so the outcomes
are deterministic.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmops_monitoring.drift import (
    DriftReport,
    centroid_shift,
    chi_square_mix,
    count_refusals,
    is_refusal,
    jensen_shannon_mix,
    ks_test,
    mmd_rbf,
    population_stability_index,
    psi_level,
    two_proportion_z_test,
)


def embeddings(seed: int, n: int = 300, dim: int = 32, shift: float = 0.0) -> np.ndarray:
    """Embedding-like rows with a common non-zero mean; `shift` moves one direction."""
    rows = np.random.default_rng(seed).normal(size=(n, dim)) + 0.5
    rows[:, 0] += shift
    return rows


REFERENCE = embeddings(101)
SAME = embeddings(202)
SHIFTED = embeddings(303, shift=1.0)


def test_centroid_shift_flags_a_moved_centroid_only() -> None:
    same = centroid_shift(REFERENCE, SAME, seed=1)
    shifted = centroid_shift(REFERENCE, SHIFTED, seed=1, labels=[f"q{i}" for i in range(300)])

    assert not same.drifted
    assert same.p_value is not None
    assert same.p_value > 0.2
    assert shifted.drifted
    assert shifted.p_value is not None
    assert shifted.p_value < 0.01
    assert shifted.statistic > same.statistic
    assert len(shifted.examples) == 5
    assert shifted.examples[0].startswith("q")
    assert centroid_shift(REFERENCE, SHIFTED, seed=1) == centroid_shift(REFERENCE, SHIFTED, seed=1)


def test_mmd_flags_a_changed_distribution_only() -> None:
    same = mmd_rbf(REFERENCE, SAME, seed=1)
    shifted = mmd_rbf(REFERENCE, SHIFTED, seed=1)

    assert not same.drifted
    assert same.p_value is not None
    assert same.p_value > 0.2
    assert shifted.drifted
    assert shifted.statistic > same.statistic
    # Subsampling keeps the cost bounded and the answer the same.
    assert mmd_rbf(REFERENCE, SHIFTED, seed=1, max_samples=150).drifted


def test_mmd_sees_a_spread_change_that_keeps_the_centroid() -> None:
    rng = np.random.default_rng(8)
    reference = rng.normal(size=(250, 8)) + 1.0
    wider = rng.normal(scale=1.6, size=(250, 8)) + 1.0

    assert not centroid_shift(reference, wider, seed=2).drifted
    assert mmd_rbf(reference, wider, seed=2).drifted


def test_ks_and_psi_flag_shifted_retrieval_scores_only() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0.70, 0.1, size=1_000)
    same = rng.normal(0.70, 0.1, size=1_000)
    shifted = rng.normal(0.62, 0.1, size=1_000)

    assert not ks_test(reference, same).drifted
    ks = ks_test(reference, shifted)
    assert ks.drifted
    assert ks.p_value is not None
    assert ks.p_value < 1e-6

    stable = population_stability_index(reference, same)
    moved = population_stability_index(reference, shifted)
    assert not stable.drifted
    assert stable.statistic < 0.1
    assert moved.drifted
    assert moved.p_value is None
    assert moved.decided_by == "statistic"
    assert moved.examples[0].startswith("[-inf")  # the lowest bin grew most
    assert psi_level(moved.statistic) == "major shift"
    assert psi_level(0.15) == "moderate shift"


def test_psi_copes_with_ties_and_empty_bins() -> None:
    lengths = np.array([10] * 500 + [20] * 300 + [30] * 200)  # answer lengths with many ties
    report = population_stability_index(lengths, np.full(400, 500))
    assert report.drifted
    assert np.isfinite(report.statistic)


def test_two_proportion_z_test_flags_a_rise_in_the_refusal_rate_only() -> None:
    risen = two_proportion_z_test(50, 1_000, 90, 1_000, name="refusal_rate")
    assert risen.drifted
    assert risen.statistic > 0
    assert not two_proportion_z_test(50, 1_000, 55, 1_000).drifted
    # One-sided: a fall is no alarm.
    assert not two_proportion_z_test(90, 1_000, 50, 1_000, alternative="larger").drifted
    assert not two_proportion_z_test(0, 100, 0, 100).drifted
    with pytest.raises(ValueError, match="trial"):
        two_proportion_z_test(0, 0, 1, 10)


def test_category_mix_shift_names_the_categories_that_grew() -> None:
    reference = {"billing": 300, "shipping": 500, "returns": 200}
    similar = {"billing": 310, "shipping": 480, "returns": 210}
    shifted = {"billing": 600, "shipping": 300, "returns": 80, "outage": 20}

    assert not chi_square_mix(reference, similar).drifted
    chi = chi_square_mix(reference, shifted)
    assert chi.drifted
    assert chi.examples == ("billing: 30.0% -> 60.0%", "outage: 0.0% -> 2.0%")

    assert not jensen_shannon_mix(reference, similar).drifted
    js = jensen_shannon_mix(reference, shifted)
    assert js.drifted
    assert 0.0 < js.statistic <= 1.0
    assert js.examples[0].startswith("billing")
    assert not chi_square_mix({"only": 5}, {"only": 9}).drifted


@pytest.mark.parametrize(
    "answer",
    [
        "I can't help with that request.",
        "I\u2019m sorry, but I cannot share internal documents.",
        "As an AI language model, I do not have opinions.",
        "I am unable to assist with this.",
        "Unfortunately I cannot provide legal advice.",
    ],
)
def test_refusals_are_recognised(answer: str) -> None:
    assert is_refusal(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "Your order ships on Monday.",
        "I can help with that: open Settings, then Billing.",
        "Our aide will call you back.",
        None,
        "",
        "Here is a long answer. " * 20 + "As an AI model, GPT-4 is discussed in the appendix.",
    ],
)
def test_ordinary_answers_are_not_refusals(answer: str | None) -> None:
    assert not is_refusal(answer)


def test_refusal_counts_feed_the_rate_test() -> None:
    assert count_refusals(["I can't help with that.", "Sure, here it is.", None]) == (1, 3)


def test_reports_serialise_to_plain_json() -> None:
    report = chi_square_mix({"a": 10, "b": 5}, {"a": 2, "b": 20})
    document = json.loads(json.dumps(report.to_dict()))
    assert document["name"] == "category_mix_chi2"
    assert document["drifted"] is True
    fields = {k: v for k, v in document.items() if k != "drifted"}  # derived, not stored
    assert DriftReport(**fields | {"examples": tuple(fields["examples"])}) == report


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="one width"):
        centroid_shift(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least one"):
        ks_test([], [1.0])
