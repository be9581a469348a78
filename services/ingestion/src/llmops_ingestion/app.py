"""Document ingestion worker: extraction, cleaning, chunking.

Skeleton: it validates, commits and dead-letters what it consumes; issue #3 adds
its behaviour.
"""

from fastapi import FastAPI

from llmops.events.catalog import Topic
from llmops.service import create_service_app, subscribe_skeleton
from llmops_ingestion.settings import IngestionSettings

CONSUMES: tuple[Topic, ...] = (Topic.DOCS_INGEST_REQUESTED,)


def create_app(settings: IngestionSettings) -> FastAPI:
    return create_service_app(
        settings, description=__doc__ or "", wire=subscribe_skeleton(CONSUMES)
    )
