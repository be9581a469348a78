"""HTTP API of the indexer: `POST /v1/search`."""

from __future__ import annotations

from fastapi import APIRouter

from llmops.rag.search import SearchRequest, SearchResponse
from llmops.service import LateBound
from llmops.tenancy import DEFAULT_TENANT, TenantId
from llmops_indexer.retrieval import Retriever


def build_router(retriever: LateBound[Retriever]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["retrieval"])

    @router.post("/search")
    async def search(body: SearchRequest, tenant: TenantId = DEFAULT_TENANT) -> SearchResponse:
        """The chunks of `collection` that best match `query`, only from the caller's tenant."""
        return await retriever.get().search(tenant, body)

    return router
