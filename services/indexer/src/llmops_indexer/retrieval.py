"""Retrieval: embed the query like the chunks were, search within the caller's tenant."""

from __future__ import annotations

import asyncio
import time

from llmops.embedding.dense import DenseEncoder
from llmops.embedding.sparse import Bm25Encoder
from llmops.rag.ids import vector_collection_name
from llmops.rag.search import RetrievalMode, SearchHit, SearchRequest, SearchResponse
from llmops_indexer.vector_store import FusionMethod, SearchMode, SearchQuery, VectorStore


class Retriever:
    """Dense, sparse or hybrid search over one collection's chunks."""

    def __init__(self, *, store: VectorStore, dense: DenseEncoder, sparse: Bm25Encoder) -> None:
        self._store = store
        self._dense = dense
        self._sparse = sparse

    @property
    def embedding_model(self) -> str:
        return self._dense.model

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Dense vectors of `texts`, as the chunks and queries are embedded."""
        vectors = await asyncio.to_thread(self._dense.encode, texts)
        return [row.tolist() for row in vectors]

    async def search(self, tenant: str, request: SearchRequest) -> SearchResponse:
        """The top chunks for the request; the tenant filter is applied by the store, always."""
        started = time.perf_counter()
        dense = None
        if request.mode is not RetrievalMode.SPARSE:
            dense = (await self.embed([request.query]))[0]
        sparse = None
        if request.mode is not RetrievalMode.DENSE:
            sparse = self._sparse.encode_query(request.query)
        query = SearchQuery(
            tenant=tenant,
            collection=request.collection,
            top_k=request.top_k,
            mode=SearchMode(request.mode.value),
            dense=dense,
            sparse=sparse,
            fusion=FusionMethod(request.fusion.value),
            filters=request.filters,
            document_ids=request.document_ids,
        )
        name = vector_collection_name(request.collection, self._dense.model)
        found = await self._store.search(name, query)
        hits = [
            SearchHit(
                chunk_id=hit.payload["chunk_id"],
                document_id=hit.payload["document_id"],
                document_version=hit.payload["document_version"],
                score=hit.score,
                text=hit.payload["text"],
                title=hit.payload.get("title"),
                source=hit.payload["source"],
                ordinal=hit.payload["ordinal"],
                metadata=hit.payload.get("metadata") or {},
            )
            for hit in found
        ]
        return SearchResponse(
            collection=request.collection,
            mode=request.mode,
            embedding_model=self._dense.model,
            hits=hits,
            took_ms=round((time.perf_counter() - started) * 1000, 3),
        )
