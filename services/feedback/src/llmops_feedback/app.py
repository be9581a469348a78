"""Human feedback, annotation queue and dataset export.

Skeleton: it validates, commits and dead-letters what it consumes; issue #7 adds
its behaviour.
"""

from fastapi import FastAPI

from llmops.events.catalog import Topic
from llmops.service import create_service_app, subscribe_skeleton
from llmops_feedback.settings import FeedbackSettings

CONSUMES: tuple[Topic, ...] = (Topic.FEEDBACK_EVENTS, Topic.LLM_COMPLETIONS)


def create_app(settings: FeedbackSettings) -> FastAPI:
    return create_service_app(
        settings, description=__doc__ or "", wire=subscribe_skeleton(CONSUMES)
    )
