"""LLM metrics, cost, drift and alerts from the event stream.

Skeleton: it validates, commits and dead-letters what it consumes; issue #7 adds
its behaviour.
"""

from fastapi import FastAPI

from llmops.events.catalog import Topic
from llmops.service import create_service_app, subscribe_skeleton
from llmops_monitoring.settings import MonitoringSettings

CONSUMES: tuple[Topic, ...] = tuple(Topic)


def create_app(settings: MonitoringSettings) -> FastAPI:
    return create_service_app(
        settings, description=__doc__ or "", wire=subscribe_skeleton(CONSUMES)
    )
