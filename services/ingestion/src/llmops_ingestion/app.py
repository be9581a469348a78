"""Document ingestion: extraction, cleaning, duplicate detection, PII redaction, chunking.

Serves the job API (`/v1/jobs`), consumes `docs.ingest.requested` (chunk one document)
and `docs.indexed` (settle it), and publishes `docs.chunked` and `docs.ingest.status`.
"""

from fastapi import FastAPI

from llmops.blobs import BlobStore
from llmops.embedding.models import load_tokenizer
from llmops.events.catalog import CONTRACTS, Topic
from llmops.service import LateBound, ServiceContext, create_service_app
from llmops_ingestion import api
from llmops_ingestion.chunking import TokenizerCounter
from llmops_ingestion.dedup import MinHasher
from llmops_ingestion.document_pipeline import PipelineTools
from llmops_ingestion.document_registry import DocumentRegistry
from llmops_ingestion.extraction import ExtractionLimits
from llmops_ingestion.ingest_worker import IngestWorker
from llmops_ingestion.job_store import JobStore
from llmops_ingestion.settings import IngestionSettings

CONSUMES: tuple[Topic, ...] = (Topic.DOCS_INGEST_REQUESTED, Topic.DOCS_INDEXED)


def create_app(settings: IngestionSettings) -> FastAPI:
    tools = PipelineTools(
        counter=TokenizerCounter(load_tokenizer(settings.embedding_model)),
        hasher=MinHasher(),
        limits=ExtractionLimits(
            max_bytes=settings.max_document_bytes,
            max_uncompressed_bytes=settings.max_uncompressed_bytes,
            max_compression_ratio=settings.max_compression_ratio,
            max_pages=settings.max_pdf_pages,
        ),
    )

    # One worker for the API and the consumer: its locks keep concurrent writes apart.
    worker: LateBound[IngestWorker] = LateBound("the ingest worker")

    async def wire(context: ServiceContext) -> None:
        await JobStore.create_indexes(context.db)
        ingest = IngestWorker(
            jobs=JobStore(context.db),
            documents=DocumentRegistry(context.db, tools.hasher.config),
            blobs=BlobStore(settings.blob_store_path),
            bus=context.bus,
            tools=tools,
            chunks_per_batch=settings.chunks_per_batch,
        )
        worker.set(ingest)
        context.bus.subscribe(CONTRACTS[Topic.DOCS_INGEST_REQUESTED], ingest.on_ingest_requested)
        context.bus.subscribe(CONTRACTS[Topic.DOCS_INDEXED], ingest.on_document_indexed)

    return create_service_app(
        settings, description=__doc__ or "", routers=[api.build_router(worker)], wire=wire
    )
