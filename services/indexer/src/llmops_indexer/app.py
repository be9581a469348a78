"""Embeds chunks into Qdrant and serves retrieval.

Skeleton: it opens Qdrant (embedded, or the server at QDRANT_URL) and validates, commits
and dead-letters what it consumes; issue #3 adds its behaviour.
"""

from fastapi import FastAPI

from llmops.events.catalog import Topic
from llmops.service import ServiceContext, create_service_app, subscribe_skeleton
from llmops.storage import qdrant_client
from llmops_indexer.settings import IndexerSettings

CONSUMES: tuple[Topic, ...] = (Topic.DOCS_CHUNKED,)


def create_app(settings: IndexerSettings) -> FastAPI:
    consume = subscribe_skeleton(CONSUMES)

    async def wire(context: ServiceContext) -> None:
        qdrant = qdrant_client(context.settings)
        context.resources.push_async_callback(qdrant.close)

        async def qdrant_answers() -> None:
            await qdrant.get_collections()

        context.health_checks["qdrant"] = qdrant_answers
        consume(context)

    return create_service_app(settings, description=__doc__ or "", wire=wire)
