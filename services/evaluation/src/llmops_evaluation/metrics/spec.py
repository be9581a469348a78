"""What a metric is, as runs, comparisons and the API describe it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool
    needs_reference: bool
    description: str


class UnknownMetricError(ValueError):
    """A metric name that is not known (or not available here); the message lists why."""
