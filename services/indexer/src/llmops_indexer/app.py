"""Indexer: embeds chunks into Qdrant and serves retrieval (`POST /v1/search`).

Consumes `docs.chunked`, publishes `docs.indexed`. Retrieval lives here because the
embedded vector engine can be opened by one process only (the server needs no such rule).
"""

import asyncio

from fastapi import FastAPI

from llmops.embedding.batching import EncodeBatcher
from llmops.embedding.dense import DenseEncoder, load_dense_encoder
from llmops.embedding.sparse import Bm25Encoder
from llmops.events.catalog import CONTRACTS, Topic
from llmops.service import LateBound, ServiceContext, create_service_app
from llmops_indexer import api
from llmops_indexer.chunk_indexer import ChunkIndexer
from llmops_indexer.retrieval import Retriever
from llmops_indexer.settings import IndexerSettings
from llmops_indexer.vector_store import open_vector_store

CONSUMES: tuple[Topic, ...] = (Topic.DOCS_CHUNKED,)


def load_encoder(settings: IndexerSettings) -> DenseEncoder:
    """The dense encoder the settings name (model, backend, batch size, threads)."""
    return load_dense_encoder(
        settings.embedding_model,
        settings.embedding_backend,
        cache_dir=settings.model_cache_dir,
        batch_size=settings.embedding_batch_size,
        threads=settings.embedding_threads,
        spin_threads=settings.embedding_thread_spinning,
        parallelism=settings.embedding_parallelism,
    )


def create_app(settings: IndexerSettings) -> FastAPI:
    retriever: LateBound[Retriever] = LateBound("the retriever")

    async def wire(context: ServiceContext) -> None:
        store = open_vector_store(settings, engine=settings.vector_engine)
        context.resources.push_async_callback(store.close)
        context.health_checks["qdrant"] = store.ping
        dense = await asyncio.to_thread(load_encoder, settings)
        sparse = Bm25Encoder()
        retriever.set(Retriever(store=store, dense=dense, sparse=sparse))
        batcher = EncodeBatcher(dense, window=settings.embedding_window)
        context.resources.push_async_callback(batcher.close)
        indexer = ChunkIndexer(
            store=store,
            dense=dense,
            batcher=batcher,
            sparse=sparse,
            db=context.db,
            bus=context.bus,
        )
        context.bus.subscribe(CONTRACTS[Topic.DOCS_CHUNKED], indexer.on_chunks)

    return create_service_app(
        settings, description=__doc__ or "", routers=[api.build_router(retriever)], wire=wire
    )
