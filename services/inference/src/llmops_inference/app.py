"""OpenAI-compatible inference server and Kafka batch worker.

Skeleton: it validates, commits and dead-letters what it consumes; issue #4 adds
its behaviour.
"""

from fastapi import FastAPI

from llmops.events.catalog import Topic
from llmops.service import create_service_app, subscribe_skeleton
from llmops_inference.settings import InferenceSettings

CONSUMES: tuple[Topic, ...] = (Topic.INFERENCE_REQUESTS,)


def create_app(settings: InferenceSettings) -> FastAPI:
    return create_service_app(
        settings, description=__doc__ or "", wire=subscribe_skeleton(CONSUMES)
    )
