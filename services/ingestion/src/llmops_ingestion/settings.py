"""Settings of this service: its own env prefix, shared infrastructure variables unprefixed."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llmops.settings import Port, ServiceSettings


class IngestionSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INGESTION_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "ingestion"
    port: Port = 8001
    max_document_bytes: int = Field(
        50 * 2**20, ge=1, description="Largest document accepted (INGESTION_MAX_DOCUMENT_BYTES)."
    )
    max_uncompressed_bytes: int = Field(
        200 * 2**20, ge=1, description="Largest unpacked size of a zip-based file (DOCX)."
    )
    max_compression_ratio: float = Field(
        100.0, gt=1, description="Unpacked/packed size ratio above which a zip is a bomb."
    )
    max_pdf_pages: int = Field(2000, ge=1, description="Most pages read from one PDF.")
    chunks_per_batch: int = Field(
        64, ge=1, le=1024, description="Chunks per `docs.chunked` event (the indexer's batch)."
    )
