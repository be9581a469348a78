"""Answer metrics: lexical (against a reference answer) and safety (reference-free)."""

from llmops_evaluation.metrics.lexical import LEXICAL_METRICS, score_lexical, score_lexical_batch
from llmops_evaluation.metrics.safety import SAFETY_METRICS, score_safety
from llmops_evaluation.metrics.spec import MetricSpec, UnknownMetricError

__all__ = [
    "LEXICAL_METRICS",
    "SAFETY_METRICS",
    "MetricSpec",
    "UnknownMetricError",
    "score_lexical",
    "score_lexical_batch",
    "score_safety",
]
