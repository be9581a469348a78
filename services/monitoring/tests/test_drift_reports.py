"""Drift report pieces that need no database: topic clustering and request validation.

The reports themselves run against the real store and encoder in
tests/integration/test_monitoring_drift.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from llmops_monitoring.drift_reports import (
    DriftOptions,
    DriftRequest,
    InvalidDriftRequest,
    TimeRange,
    cluster_topics,
    nearest_centroid,
)

T0 = datetime(2026, 11, 23, tzinfo=UTC)
HOUR = timedelta(hours=1)


def blobs(seed: int, sizes: tuple[int, ...] = (40, 25, 60)) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated clusters in 16 dimensions, and which one each row came from."""
    rng = np.random.default_rng(seed)
    centres = np.eye(16)[: len(sizes)] * 10.0
    rows = np.vstack([centres[i] + rng.normal(size=(n, 16)) for i, n in enumerate(sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(len(rows))
    return rows[order], truth[order]


def test_kmeans_recovers_separated_topics_and_is_seeded() -> None:
    rows, truth = blobs(1)

    centroids, labels = cluster_topics(rows, 3, seed=7)

    # the same partition as the truth, whatever the numbering
    pairs = set(zip(labels.tolist(), truth.tolist(), strict=True))
    assert len(pairs) == 3
    assert len({label for label, _ in pairs}) == 3
    assert sorted(np.bincount(labels).tolist()) == [25, 40, 60]
    assert np.array_equal(nearest_centroid(rows, centroids), labels)
    again_centroids, again = cluster_topics(rows, 3, seed=7)
    assert np.array_equal(again, labels)
    assert np.array_equal(again_centroids, centroids)


def test_new_points_join_the_nearest_topic() -> None:
    rows, _ = blobs(2)
    centroids, labels = cluster_topics(rows, 3, seed=0)
    near_first = rows[labels == labels[0]][:5] + 0.01

    assert set(nearest_centroid(near_first, centroids).tolist()) == {int(labels[0])}


def test_kmeans_handles_duplicates_and_refuses_impossible_k() -> None:
    rows = np.repeat(np.eye(4)[:2], 10, axis=0)  # two distinct points, ten copies each

    _, labels = cluster_topics(rows, 3, seed=0)

    assert len(set(labels[:10].tolist())) == 1
    assert len(set(labels[10:].tolist())) == 1
    assert labels[0] != labels[10]
    with pytest.raises(ValueError, match="k=0"):
        cluster_topics(rows, 0)
    with pytest.raises(ValueError, match="k=21"):
        cluster_topics(rows, 21)


def test_a_request_names_its_scope() -> None:
    request = DriftRequest(
        "acme", TimeRange(T0, T0 + HOUR), TimeRange(T0 + HOUR, T0 + 2 * HOUR), collection="kb"
    )

    assert request.scope == "acme/*/kb"
    assert (
        DriftRequest("acme", request.reference, request.current, prompt="support@2").scope
        == "acme/support@2/*"
    )


@pytest.mark.parametrize(
    ("reference", "current", "says"),
    [
        ((T0 + 2 * HOUR, T0 + 3 * HOUR), (T0, T0 + HOUR), "swap reference and current"),
        ((T0, T0 + 2 * HOUR), (T0 + HOUR, T0 + 3 * HOUR), "the windows overlap"),
        ((T0 + HOUR, T0), (T0 + HOUR, T0 + 2 * HOUR), "reference.since"),
        ((T0, T0 + HOUR), (T0 + 2 * HOUR, T0 + 2 * HOUR), "current.since"),
        (
            (T0.replace(tzinfo=None), T0 + HOUR),
            (T0 + HOUR, T0 + 2 * HOUR),
            "reference.since needs a timezone",
        ),
    ],
)
def test_windows_must_be_ordered_and_apart(
    reference: tuple[datetime, datetime], current: tuple[datetime, datetime], says: str
) -> None:
    with pytest.raises(InvalidDriftRequest, match=says):
        DriftRequest("acme", TimeRange(*reference), TimeRange(*current))


def test_adjacent_windows_are_allowed() -> None:
    DriftRequest("acme", TimeRange(T0, T0 + HOUR), TimeRange(T0 + HOUR, T0 + 2 * HOUR))


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"min_samples": 2}, "min_samples must be at least 5"),
        ({"min_samples": 50, "embedded_samples": 40}, r"embedded_samples \(40\)"),
        ({"min_samples": 50, "max_samples": 40}, r"max_samples \(40\)"),
        ({"topics": 1}, "topics"),
    ],
)
def test_options_that_would_run_nothing_are_refused(values: dict[str, float], says: str) -> None:
    with pytest.raises(InvalidDriftRequest, match=says):
        DriftOptions(**values)  # type: ignore[arg-type]  # ints and floats by field
