"""Ingestion throughput and retrieval latency: the pipeline vs its ceiling vs LlamaIndex.

In one run, on the same generated corpus (>= 1,000 documents, >= 5,000 chunks):
  (a) raw: the exact chunks the pipeline produces, encoded in this process with the same
      model, backend, batch size and encoder calls as the indexer (calls of its window,
      sorted by length inside): the ceiling. For reference it also times calls of one
      model batch in corpus order (no sorting across batches) and one call for all;
  (b) pipeline: documents stored as blobs, one job submitted to the ingestion service;
      ingestion and the indexer run as their own processes over real Kafka and FerretDB,
      timed from submission until the job is final;
  (c) LlamaIndex `IngestionPipeline` (SentenceSplitter, HuggingFaceEmbedding, embedded
      Qdrant) with the same model and chunk size, its defaults otherwise.
Then recall@5 of the labelled questions through the indexer's `/v1/search`, and search
latency (query embedding + hybrid search) at 20k and 100k chunks. Last line: one JSON object.

    make bench-ingest
    python bench/ingest_throughput.py --documents 1000
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer
from knowledge_base import Article, LabelledQuestion, build_corpus, questions
from pymongo import AsyncMongoClient

from llmops.blobs import BlobStore
from llmops.bus.provision import ensure_topics, topic_specs
from llmops.embedding.models import load_tokenizer, resolve_model_dir
from llmops.embedding.sparse import Bm25Encoder
from llmops.events.catalog import CONTRACTS, Chunk, IngestJobProgress, IngestJobState, Topic
from llmops.events.codec import EventCodec
from llmops.rag.ids import document_id_for, vector_collection_name
from llmops.rag.jobs import CollectionOptions, DocumentSubmission, JobSubmission
from llmops.rag.search import SearchRequest
from llmops.settings import WireFormat
from llmops.tenancy import TENANT_HEADER
from llmops.testing import wait_answering
from llmops_indexer.app import load_encoder
from llmops_indexer.chunk_indexer import embedding_text
from llmops_indexer.retrieval import Retriever
from llmops_indexer.settings import IndexerSettings
from llmops_indexer.vector_store import ChunkPoint, open_vector_store
from llmops_indexer.vector_store_edge import EdgeVectorStore
from llmops_ingestion.chunking import TokenizerCounter
from llmops_ingestion.dedup import MinHasher
from llmops_ingestion.document_pipeline import PipelineTools, prepare_document
from llmops_ingestion.extraction import ExtractionLimits
from llmops_ingestion.job_store import FINAL_JOB_STATES

TENANT = "bench"
COLLECTION = "kb"
INGESTION_PORT, INDEXER_PORT = 18301, 18302
CONTENT_TYPE = "text/markdown"
JOB_TIMEOUT_S = 1800.0
"""How long the pipeline may take before the run fails (a stuck or crashed service)."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- (a) the ceiling ----------------------------------------------------------------------


def pipeline_chunks(articles: list[Article], settings: IndexerSettings) -> list[str]:
    """The texts the indexer embeds for this corpus, cut exactly as ingestion cuts them."""
    tools = PipelineTools(
        counter=TokenizerCounter(load_tokenizer(settings.embedding_model)),
        hasher=MinHasher(),
        limits=ExtractionLimits(),
    )
    texts = []
    for article in articles:
        prepared = prepare_document(
            article.text.encode(),
            declared_type=CONTENT_TYPE,
            source=article.source,
            options=CollectionOptions(),
            tools=tools,
        )
        for ordinal, chunk in enumerate(prepared.chunks):
            texts.append(
                embedding_text(
                    Chunk(chunk_id=str(ordinal), ordinal=ordinal, text=chunk.text, token_count=0)
                )
            )
    return texts


@dataclass(frozen=True)
class RawEncode:
    per_s: float
    """Chunks/s in calls of the indexer's window: the ceiling."""
    in_batch_calls_per_s: float
    """Chunks/s in calls of one model batch, in corpus order (nothing sorted across batches)."""
    in_one_call_per_s: float
    """Chunks/s in one call for all (every chunk sorted by length together)."""
    vectors: np.ndarray


def raw_encode(texts: list[str], settings: IndexerSettings) -> RawEncode:
    """The indexer's encoder over `texts` in calls of its window, and for reference in calls
    of one model batch and in one call."""
    encoder = load_encoder(settings)
    encoder.encode(texts[:64])  # warm up

    def timed(size: int) -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        vectors = [encoder.encode(texts[i : i + size]) for i in range(0, len(texts), size)]
        return len(texts) / (time.perf_counter() - started), np.concatenate(vectors)

    per_s, vectors = timed(settings.embedding_window)
    in_batch_calls_per_s, _ = timed(settings.embedding_batch_size)
    in_one_call_per_s, _ = timed(len(texts))
    return RawEncode(per_s, in_batch_calls_per_s, in_one_call_per_s, vectors)


# -- (b) the pipeline ---------------------------------------------------------------------


def service_env(work: Path, prefix: str, database: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_TOPIC_PREFIX": prefix,
        "MONGODB_DATABASE": database,
        "QDRANT_PATH": str(work / "qdrant"),
        "BLOB_STORE_PATH": str(work / "blobs"),
        "INGESTION_PORT": str(INGESTION_PORT),
        "INDEXER_PORT": str(INDEXER_PORT),
        "LOG_LEVEL": "WARNING",
    }


def start_services(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    """The indexer and ingestion as their own processes, as they are deployed."""
    return [
        subprocess.Popen([sys.executable, "-m", module], env=env)
        for module in ("llmops_indexer", "llmops_ingestion")
    ]


async def run_pipeline(
    articles: list[Article], work: Path, bootstrap: str, prefix: str
) -> dict[str, Any]:
    """Submit one job; time it until its final `docs.ingest.status` event.

    The end is read from the event stream, as an analyst's consumer would, rather than by
    polling the job: each poll reads the job record, whose outcome maps grow with the
    job, and on FerretDB that load fell on the machine being measured.
    """
    blobs = BlobStore(work / "blobs")
    documents = []
    for article in articles:
        stored = await blobs.put(article.text.encode())
        documents.append(
            DocumentSubmission(
                document_id=document_id_for(COLLECTION, article.source),
                source=article.source,
                content_uri=stored.uri,
                content_type=CONTENT_TYPE,
                size_bytes=stored.size_bytes,
                content_sha256=stored.sha256,
            )
        )
    submission = JobSubmission(collection=COLLECTION, documents=documents)
    url = f"http://127.0.0.1:{INGESTION_PORT}"
    headers = {TENANT_HEADER: TENANT}
    status = AIOKafkaConsumer(
        f"{prefix}{Topic.DOCS_INGEST_STATUS.value}",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",  # the run's own topic: every event is this run's
        enable_auto_commit=False,
    )
    await status.start()
    try:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
            started = time.perf_counter()
            response = await client.post("/v1/jobs", json=submission.model_dump(mode="json"))
            response.raise_for_status()
            job_id = response.json()["job_id"]
            try:
                final = await asyncio.wait_for(final_status(status, job_id), JOB_TIMEOUT_S)
            except TimeoutError:
                msg = f"job {job_id} did not finish in {JOB_TIMEOUT_S:.0f}s; see the services' logs"
                raise RuntimeError(msg) from None
            elapsed_s = time.perf_counter() - started
            while True:  # the job record is written just after its final event
                answer = await client.get(f"/v1/jobs/{job_id}", params={"items": "false"})
                answer.raise_for_status()
                job: dict[str, Any] = answer.json()
                if job["state"] == final.value:
                    break
                await asyncio.sleep(0.05)
    finally:
        await status.stop()
    job["elapsed_s"] = elapsed_s
    return job


async def final_status(consumer: AIOKafkaConsumer, job_id: str) -> IngestJobState:
    """Wait for the job's final progress event (published before the job record says so)."""
    codec = EventCodec(CONTRACTS[Topic.DOCS_INGEST_STATUS], WireFormat.JSON)  # either format
    while True:
        polled = await consumer.getmany(timeout_ms=200)
        for records in polled.values():
            for record in records:
                headers = {name: value.decode() for name, value in record.headers}
                progress: IngestJobProgress = codec.decode(record.value, headers).data
                if progress.job_id == job_id and progress.state in FINAL_JOB_STATES:
                    return progress.state


async def recall_at_5(labelled: list[LabelledQuestion]) -> float:
    found = 0
    url = f"http://127.0.0.1:{INDEXER_PORT}"
    async with httpx.AsyncClient(base_url=url, headers={TENANT_HEADER: TENANT}) as client:
        for question in labelled:
            body = SearchRequest(query=question.text, collection=COLLECTION, top_k=5)
            response = await client.post("/v1/search", json=body.model_dump(mode="json"))
            response.raise_for_status()
            sources = {hit["source"] for hit in response.json()["hits"]}
            found += question.source in sources
    return found / len(labelled)


# -- (c) the peer -------------------------------------------------------------------------


def private_nltk_data(work: Path) -> None:
    """Point LlamaIndex at a copy of the NLTK data it bundles.

    nltk refuses to open a file with more than one hard link, and uv installs packages as
    hard links into its cache, so the bundled stopwords cannot be read where they are.
    """
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or spec.origin is None:
        raise RuntimeError("llama-index is not installed: run `make bench-ingest`")
    bundled = Path(spec.origin).parent / "_static" / "nltk_cache"
    copy = work / "nltk_data"
    shutil.copytree(bundled, copy, dirs_exist_ok=True)
    os.environ["NLTK_DATA"] = str(copy)


def run_llamaindex(
    articles: list[Article], work: Path, settings: IndexerSettings
) -> tuple[float, int]:
    private_nltk_data(work)
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    tokenizer = load_tokenizer(settings.embedding_model)
    client = QdrantClient(path=str(work / "llamaindex-qdrant"))
    pipeline = IngestionPipeline(
        transformations=[
            # tiktoken, the default tokenizer, downloads its encoding; count like the model does
            SentenceSplitter(
                chunk_size=200,
                chunk_overlap=30,
                tokenizer=lambda text: tokenizer.encode(text, add_special_tokens=False).ids,
            ),
            HuggingFaceEmbedding(model_name=str(resolve_model_dir(settings.embedding_model))),
        ],
        vector_store=QdrantVectorStore(client=client, collection_name="bench"),
    )
    documents = [Document(text=a.text, metadata={"source": a.source}) for a in articles]
    started = time.perf_counter()
    nodes = pipeline.run(documents=documents)
    elapsed = time.perf_counter() - started
    client.close()
    return len(nodes) / elapsed, len(nodes)


# -- retrieval latency --------------------------------------------------------------------


async def search_latency(
    settings: IndexerSettings,
    vectors: np.ndarray,
    labelled: list[LabelledQuestion],
    sizes: list[int],
) -> dict[int, tuple[float, float]]:
    """p50/p95 of query embedding + hybrid search after growing the collection to each size."""
    store = open_vector_store(settings, engine=settings.vector_engine)
    dense = load_encoder(settings)
    retriever = Retriever(store=store, dense=dense, sparse=Bm25Encoder())
    name = vector_collection_name(COLLECTION, dense.model)
    sparse = Bm25Encoder().encode_documents(["synthetic filler chunk"])[0]
    rng = np.random.default_rng(3)
    results = {}
    try:
        count = await store.count(name, tenant=TENANT, collection=COLLECTION)
        for size in sizes:
            started = time.perf_counter()
            while count < size:
                batch = min(2_000, size - count)
                base = vectors[rng.integers(0, len(vectors), batch)]
                noisy = base + rng.normal(0, 0.05, base.shape).astype(np.float32)
                noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
                points = [
                    ChunkPoint(
                        point_id=str(uuid.uuid4()),
                        dense=row.tolist(),
                        sparse=sparse,
                        payload={
                            "tenant": TENANT,
                            "collection": COLLECTION,
                            "document_id": f"synthetic-{count + i}",
                            "document_version": 1,
                            "chunk_id": f"synthetic-{count + i}",
                            "ordinal": 0,
                            "text": "synthetic filler chunk",
                            "title": None,
                            "source": "synthetic",
                            "metadata": {},
                        },
                    )
                    for i, row in enumerate(noisy)
                ]
                await store.upsert(name, points)
                count += batch
            if isinstance(store, EdgeVectorStore):
                await store.optimize(name)
            say(f"  grew to {size} chunks and optimised in {time.perf_counter() - started:.1f}s")
            timings = []
            for question in labelled:
                request = SearchRequest(query=question.text, collection=COLLECTION, top_k=5)
                began = time.perf_counter()
                await retriever.search(TENANT, request)
                timings.append((time.perf_counter() - began) * 1000)
            timings.sort()
            p50 = statistics.median(timings)
            p95 = timings[int(len(timings) * 0.95) - 1]
            results[size] = (p50, p95)
            say(f"  search at {size}: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    finally:
        await store.close()
    return results


# -- the run ------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    articles = build_corpus(args.documents)
    labelled = questions(articles, args.questions)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    settings = IndexerSettings(QDRANT_PATH=str(work / "qdrant"))
    prefix, database = f"bench{uuid.uuid4().hex[:8]}.", f"bench_{uuid.uuid4().hex[:8]}"
    say(
        f"corpus: {len(articles)} documents; backend {settings.embedding_backend}, "
        f"batch {settings.embedding_batch_size}"
    )

    texts = pipeline_chunks(articles, settings)
    raw = raw_encode(texts, settings)
    raw_per_s, vectors = raw.per_s, raw.vectors
    say(
        f"(a) raw encode: {len(texts)} chunks, {raw_per_s:.0f} chunks/s in calls of "
        f"{settings.embedding_window} (for reference: {raw.in_batch_calls_per_s:.0f}/s in "
        f"calls of {settings.embedding_batch_size} in corpus order, "
        f"{raw.in_one_call_per_s:.0f}/s in one call)"
    )

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    config = {"defaults": {"partitions": 3, "retention_hours": 1, "dlq_retention_hours": 1}}
    await ensure_topics(bootstrap, topic_specs(config, prefix=prefix))
    env = service_env(work, prefix, database)
    services = start_services(env)
    try:
        await wait_answering(f"http://127.0.0.1:{INDEXER_PORT}/healthz", services[0])
        await wait_answering(f"http://127.0.0.1:{INGESTION_PORT}/healthz", services[1])
        job = await run_pipeline(articles, work, bootstrap, prefix)
        chunks = job["counts"]["chunks"]
        pipeline_per_s = chunks / job["elapsed_s"]
        say(
            f"(b) pipeline: job {job['state']}, {chunks} chunks in {job['elapsed_s']:.1f}s, "
            f"{pipeline_per_s:.0f} chunks/s"
        )
        if job["state"] != "completed" or chunks != len(texts):
            raise RuntimeError(f"the job did not index every chunk: {job['counts']}")
        recall = await recall_at_5(labelled)
        say(f"recall@5 over {len(labelled)} questions: {recall:.3f}")
    finally:
        for process in services:
            process.terminate()
        for process in services:
            process.wait(timeout=60)

    llama_per_s, llama_nodes = run_llamaindex(articles, work, settings)
    say(f"(c) LlamaIndex: {llama_nodes} nodes, {llama_per_s:.0f} chunks/s")

    latency = await search_latency(settings, vectors, labelled, [20_000, 100_000])

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")
    )
    await mongo.drop_database(database)
    await mongo.close()
    shutil.rmtree(work, ignore_errors=True)
    return {
        "raw_chunks_per_s": round(raw_per_s, 1),
        "pipeline_chunks_per_s": round(pipeline_per_s, 1),
        "llamaindex_chunks_per_s": round(llama_per_s, 1),
        "ratio_vs_raw": round(pipeline_per_s / raw_per_s, 3),
        "ratio_vs_llamaindex": round(pipeline_per_s / llama_per_s, 3),
        "search_p95_ms_20k": round(latency[20_000][1], 2),
        "search_p95_ms_100k": round(latency[100_000][1], 2),
        "recall_at_5": round(recall, 3),
        "raw_in_batch_calls_chunks_per_s": round(raw.in_batch_calls_per_s, 1),
        "raw_in_one_call_chunks_per_s": round(raw.in_one_call_per_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--documents", type=int, default=1000, help="corpus size (default 1000)")
    parser.add_argument("--questions", type=int, default=200, help="labelled questions asked")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = asyncio.run(main_async(args))
    say(
        f"targets: pipeline >= 0.85 x raw ({result['ratio_vs_raw']}), >= 1.5 x LlamaIndex "
        f"({result['ratio_vs_llamaindex']}), search p95 at 100k <= 25 ms "
        f"({result['search_p95_ms_100k']})"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
