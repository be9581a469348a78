"""`POST /v1/search`: what a caller asks the retrieval API and what it gets back."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from llmops.rag.ids import COLLECTION_PATTERN


class RetrievalMode(StrEnum):
    """Dense vectors, sparse BM25-style term vectors, or both fused."""

    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"


class Fusion(StrEnum):
    """How hybrid search merges its two ranked lists: reciprocal rank or distribution-based."""

    RRF = "rrf"
    DBSF = "dbsf"


class SearchRequest(BaseModel):
    """Find the chunks of a collection that best answer `query`, within the caller's tenant."""

    query: str = Field(min_length=1, max_length=4000, description="Question or search text.")
    collection: str = Field(pattern=COLLECTION_PATTERN, description="Collection to search.")
    top_k: int = Field(5, ge=1, le=100, description="How many chunks to return.")
    mode: RetrievalMode = RetrievalMode.HYBRID
    fusion: Fusion = Fusion.RRF
    filters: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Document metadata that must match: a value, or a list of allowed values.",
    )
    document_ids: list[str] | None = Field(
        None, max_length=1000, description="Only search these documents."
    )


class SearchHit(BaseModel):
    """One retrieved chunk with its score and where it came from."""

    chunk_id: str
    document_id: str
    document_version: int
    score: float
    text: str
    title: str | None = None
    source: str
    ordinal: int
    metadata: dict[str, str] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    """Ranked hits, best first; `embedding_model` says which model embedded the query."""

    collection: str
    mode: RetrievalMode
    embedding_model: str
    hits: list[SearchHit]
    took_ms: float
