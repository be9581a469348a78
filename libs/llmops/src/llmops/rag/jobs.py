"""Ingest jobs: how a batch of documents is submitted, and how its progress reads.

The gateway stores uploads (claim check) and submits a job to ingestion; the CLI and
support apps poll the job's view for progress, per-item outcomes and the data report.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from llmops.events.catalog import IngestJobState
from llmops.rag.ids import COLLECTION_PATTERN

MAX_DOCUMENTS_PER_JOB = 10_000


class ItemState(StrEnum):
    """Where one document of a job stands; indexed, skipped and failed are final."""

    QUEUED = "queued"
    CHUNKED = "chunked"
    INDEXED = "indexed"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in {ItemState.INDEXED, ItemState.SKIPPED, ItemState.FAILED}


class CollectionOptions(BaseModel):
    """How a collection's documents are cleaned and cut; saved with the collection."""

    chunk_tokens: int = Field(200, ge=16, le=2048, description="Chunk size in model tokens.")
    overlap_tokens: int = Field(30, ge=0, le=512, description="Tokens shared by neighbours.")
    redact_pii: bool = Field(False, description="Replace emails, phones, cards, IBANs, ...")
    skip_near_duplicates: bool = Field(
        False, description="Skip (rather than only report) near-duplicate documents."
    )
    near_duplicate_threshold: float = Field(
        0.8, gt=0, le=1, description="Estimated Jaccard similarity that makes a near duplicate."
    )

    @model_validator(mode="after")
    def _overlap_below_half(self) -> CollectionOptions:
        if self.overlap_tokens >= self.chunk_tokens // 2:
            msg = "overlap_tokens must be less than half of chunk_tokens"
            raise ValueError(msg)
        return self


class DocumentSubmission(BaseModel):
    """One stored document to ingest: the claim check and what is known about it."""

    document_id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=2000)
    content_uri: str
    content_type: str
    size_bytes: int = Field(ge=0)
    content_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    metadata: dict[str, str] = Field(default_factory=dict)


class RejectedDocument(BaseModel):
    """A document refused before it was stored (e.g. too large); reported in the job."""

    document_id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=2000)
    reason: str
    detail: str


class JobSubmission(BaseModel):
    """A job: documents for one collection; `options`, when given, become the collection's."""

    collection: str = Field(pattern=COLLECTION_PATTERN)
    documents: list[DocumentSubmission] = Field(max_length=MAX_DOCUMENTS_PER_JOB)
    rejected: list[RejectedDocument] = Field(default_factory=list)
    options: CollectionOptions | None = None

    @model_validator(mode="after")
    def _something_to_do(self) -> JobSubmission:
        if not self.documents and not self.rejected:
            msg = "a job needs at least one document"
            raise ValueError(msg)
        ids = [d.document_id for d in self.documents] + [r.document_id for r in self.rejected]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            msg = f"document ids appear more than once in the job: {', '.join(duplicated[:5])}"
            raise ValueError(msg)
        return self


class JobCounts(BaseModel):
    """Running totals of a job."""

    documents_total: int = 0
    documents_done: int = 0
    documents_failed: int = 0
    documents_skipped: int = 0
    chunks: int = 0


class JobItem(BaseModel):
    """One document's outcome, with the reason when it was skipped or failed."""

    document_id: str
    source: str
    state: ItemState
    reason: str | None = None
    detail: str | None = None
    document_version: int | None = None
    chunks: int = 0
    characters: int = 0
    near_duplicate_of: str | None = None
    similarity: float | None = None
    pii_redactions: dict[str, int] = Field(default_factory=dict)


class Distribution(BaseModel):
    """Summary of a length distribution."""

    count: int
    min: float
    p50: float
    p90: float
    max: float
    mean: float


class DuplicatePair(BaseModel):
    """A document found to repeat another one of the collection."""

    document_id: str
    source: str
    duplicate_of: str
    similarity: float


class DataReport(BaseModel):
    """What the job's corpus looked like: sizes, duplicates, failures."""

    documents: int
    documents_indexed: int
    chunks: int
    document_characters: Distribution | None
    chunk_tokens: Distribution | None
    exact_duplicates: list[DuplicatePair]
    near_duplicates: list[DuplicatePair]
    skipped_by_reason: dict[str, int]
    failures_by_reason: dict[str, int]
    pii_redactions: dict[str, int]


class JobView(BaseModel):
    """An ingest job as its submitter sees it."""

    job_id: str
    tenant: str
    collection: str
    state: IngestJobState
    counts: JobCounts
    created_at: datetime
    updated_at: datetime
    items: list[JobItem]
    report: DataReport | None = None
