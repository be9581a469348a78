"""Public OpenAI-compatible API: keys, quotas, routing, caches.

Skeleton: it validates, commits and dead-letters what it consumes; issue #4 adds
its behaviour.
"""

from fastapi import FastAPI

from llmops.events.catalog import Topic
from llmops.service import create_service_app, subscribe_skeleton
from llmops_gateway.settings import GatewaySettings

CONSUMES: tuple[Topic, ...] = (Topic.PROMPTS_CHANGED,)


def create_app(settings: GatewaySettings) -> FastAPI:
    return create_service_app(
        settings, description=__doc__ or "", wire=subscribe_skeleton(CONSUMES)
    )
