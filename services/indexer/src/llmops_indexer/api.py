"""HTTP API of the indexer: `POST /v1/search` and `POST /v1/embeddings` (OpenAI shape)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from llmops.llm.models import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from llmops.rag.search import SearchRequest, SearchResponse
from llmops.service import LateBound
from llmops.tenancy import DEFAULT_TENANT, TenantId
from llmops_indexer.retrieval import Retriever

MAX_EMBEDDING_INPUTS = 256


def build_router(retriever: LateBound[Retriever]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["retrieval"])

    @router.post("/search")
    async def search(body: SearchRequest, tenant: TenantId = DEFAULT_TENANT) -> SearchResponse:
        """The chunks of `collection` that best match `query`, only from the caller's tenant."""
        return await retriever.get().search(tenant, body)

    @router.post("/embeddings")
    async def embeddings(body: EmbeddingRequest) -> EmbeddingResponse:
        """Embed texts with the model the collections are indexed with (name it in `model`)."""
        current = retriever.get()
        model = current.embedding_model
        if body.model not in (model, model.rsplit("/", 1)[-1]):
            raise HTTPException(404, f"model {body.model!r} is not served here; use {model!r}")
        texts = body.texts()
        if not texts or len(texts) > MAX_EMBEDDING_INPUTS:
            raise HTTPException(400, f"input must hold 1 to {MAX_EMBEDDING_INPUTS} texts")
        vectors = await current.embed(texts)
        # Usage counts words: the encoders do not expose their tokenizers' counts.
        words = sum(len(text.split()) for text in texts)
        return EmbeddingResponse(
            data=[Embedding(index=i, embedding=vector) for i, vector in enumerate(vectors)],
            model=model,
            usage=EmbeddingUsage(prompt_tokens=words, total_tokens=words),
        )

    return router
