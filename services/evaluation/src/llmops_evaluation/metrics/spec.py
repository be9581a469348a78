"""What a metric is, as runs, comparisons and the API describe it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    """A metric's name and how to read it: `higher_is_better` decides which way a
    comparison counts as a win; `needs_reference` says whether items need an expected
    answer."""

    name: str
    higher_is_better: bool
    needs_reference: bool
    description: str


class UnknownMetricError(ValueError):
    """A metric name that is not known (or not available here); the message lists the
    known ones."""
