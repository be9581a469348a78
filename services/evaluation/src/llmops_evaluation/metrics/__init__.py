"""Answer metrics: lexical (against a reference), safety (reference-free) and embedding
similarity (needs a model). Each metric is described by a `MetricSpec`."""

from llmops_evaluation.metrics.embedding import (
    EMBEDDING_METRICS,
    TextEncoder,
    cosine_similarities,
    embedding_similarity,
)
from llmops_evaluation.metrics.lexical import LEXICAL_METRICS, score_lexical, score_lexical_batch
from llmops_evaluation.metrics.safety import SAFETY_METRICS, score_safety
from llmops_evaluation.metrics.spec import MetricSpec, UnknownMetricError

__all__ = [
    "EMBEDDING_METRICS",
    "LEXICAL_METRICS",
    "SAFETY_METRICS",
    "MetricSpec",
    "TextEncoder",
    "UnknownMetricError",
    "cosine_similarities",
    "embedding_similarity",
    "score_lexical",
    "score_lexical_batch",
    "score_safety",
]
