"""Datasets, evaluation runs, metrics and comparisons.

Skeleton: it validates, commits and dead-letters what it consumes; issue #6 adds
its behaviour.
"""

from fastapi import FastAPI

from llmops.events.catalog import Topic
from llmops.service import create_service_app, subscribe_skeleton
from llmops_evaluation.settings import EvaluationSettings

CONSUMES: tuple[Topic, ...] = (Topic.LLM_COMPLETIONS, Topic.INFERENCE_RESULTS, Topic.EVAL_REQUESTS)


def create_app(settings: EvaluationSettings) -> FastAPI:
    return create_service_app(
        settings, description=__doc__ or "", wire=subscribe_skeleton(CONSUMES)
    )
