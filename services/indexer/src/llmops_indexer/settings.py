"""Settings of this service: its own env prefix, shared infrastructure variables unprefixed."""

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llmops.embedding.dense import EmbeddingBackend, Parallelism
from llmops.settings import Port, ServiceSettings


class IndexerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INDEXER_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "indexer"
    port: Port = 8002
    # Defaults measured on the ingest benchmark's chunks (2 CPU cores): onnx-int8 encodes
    # ~70 chunks/s at batch 16 against ~36 for onnx fp32 and ~52 for torch, with the same
    # recall@5; smaller batches carry less padding.
    embedding_backend: EmbeddingBackend = Field(
        EmbeddingBackend.ONNX_INT8,
        description="torch (sentence-transformers), onnx, or onnx-int8 (onnxruntime directly).",
    )
    embedding_batch_size: int = Field(16, ge=1, le=1024, description="Texts per forward pass.")
    embedding_window: int = Field(
        128,
        ge=1,
        le=8192,
        description=(
            "Chunks encoded per encoder call, gathered from the documents being indexed at "
            "once and sorted by length so each forward pass carries little padding."
        ),
    )
    embedding_threads: int | None = Field(
        None, ge=1, description="CPU threads for embedding; default: all cores."
    )
    consumer_concurrency: int = Field(
        32,
        ge=1,
        le=256,
        validation_alias="CONSUMER_CONCURRENCY",
        description=(
            "Chunk batches handled at once (other services default to 8): their chunks fill "
            "the encoder's window while the previous window is encoded. Measured, 1,000 "
            "documents on 2 cores: 73 chunks/s at 8, 90 at 32, 88 at 64."
        ),
    )
    embedding_parallelism: Parallelism = Field(
        Parallelism.BATCHES,
        description=(
            "ONNX backends: `batches` runs forward passes at once, one thread each; "
            "`operators` splits each pass across the threads, which then wait for each other "
            "at every operator, so they stall when other processes share the cores."
        ),
    )
    embedding_thread_spinning: bool = Field(
        False,
        description=(
            "Let onnxruntime's threads busy-wait between operators: a few % faster when the "
            "indexer has its cores to itself, CPU taken from everything else when not."
        ),
    )
    model_cache_dir: Path = Field(
        Path.home() / ".cache" / "llmops" / "models",
        description="Where exported ONNX models are kept between runs.",
    )
    vector_engine: Literal["edge", "qdrant-local"] = Field(
        "edge",
        description=(
            "Embedded engine when QDRANT_URL is unset: qdrant-edge (Qdrant's engine, HNSW) "
            "or qdrant-client's local mode (exact, small collections)."
        ),
    )
