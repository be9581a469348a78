"""Where chunk vectors live: one protocol, two engines.

Production talks to the Qdrant server through qdrant-client (`QdrantVectorStore`). Without a
server the default is qdrant-edge (`EdgeVectorStore`), Qdrant's own engine embedded in the
process; qdrant-client's local mode (brute force in Python) stays available as
`qdrant-local`. Every search is scoped to one tenant and one collection by a `must` that
callers cannot widen.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from llmops.embedding.sparse import SparseVector

if TYPE_CHECKING:
    from llmops.settings import ServiceSettings

DENSE_VECTOR = "dense"
SPARSE_VECTOR = "bm25"

# Ranking constant of reciprocal rank fusion, the value of the original paper (Cormack et
# al., 2009). Set explicitly so that both engines fuse identically: Qdrant's default is 2.
RRF_K = 60

# Each half of a hybrid search fetches this many candidates per requested hit before fusion.
HYBRID_PREFETCH_FACTOR = 4

KEYWORD_INDEXES = ("tenant", "collection", "document_id", "chunk_id")
INTEGER_INDEXES = ("document_version",)

ENGINES = ("edge", "qdrant-local")

_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class SearchMode(StrEnum):
    """Which vectors rank the hits."""

    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"


class FusionMethod(StrEnum):
    """How a hybrid search merges its dense and sparse rankings."""

    RRF = "rrf"
    DBSF = "dbsf"


@dataclass(frozen=True)
class ChunkPoint:
    """One chunk as stored: its id (a UUID), both vectors and the payload searches return."""

    point_id: str
    dense: Sequence[float]
    sparse: SparseVector
    payload: dict[str, Any]

    def __post_init__(self) -> None:
        canonical_point_id(self.point_id)


@dataclass(frozen=True)
class SearchQuery:
    """A retrieval request, always scoped to one tenant's collection.

    `filters` match payload `metadata.<key>`: a string is equality, a sequence any-of.
    `document_ids`, when given, restricts hits to those documents.
    """

    tenant: str
    collection: str
    top_k: int
    mode: SearchMode
    dense: Sequence[float] | None = None
    sparse: SparseVector | None = None
    fusion: FusionMethod = FusionMethod.RRF
    filters: Mapping[str, str | Sequence[str]] = field(default_factory=lambda: MappingProxyType({}))
    document_ids: Sequence[str] | None = None


@dataclass(frozen=True)
class SearchHit:
    """One ranked chunk: its point id, the engine's score and the stored payload."""

    point_id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class PayloadMatch:
    """A `must` condition: payload `key` equals the single value, or any of several."""

    key: str
    values: tuple[str, ...]


class VectorStore(Protocol):
    """Chunk vectors of every tenant, one engine collection per embedding space."""

    async def ensure_collection(self, name: str, dimension: int) -> None:
        """Create the collection if missing; ValueError if it exists with another dimension."""
        ...

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        """Write points, replacing any with the same id; durable when it returns."""
        ...

    async def delete_document(
        self,
        name: str,
        *,
        tenant: str,
        collection: str,
        document_id: str,
        keep_version: int | None = None,
    ) -> int:
        """Remove a document's points (or those not of `keep_version`); return how many."""
        ...

    async def count(
        self, name: str, *, tenant: str, collection: str, document_id: str | None = None
    ) -> int:
        """Exact number of points of a tenant's collection, or of one document in it."""
        ...

    async def search(self, name: str, query: SearchQuery) -> list[SearchHit]:
        """Top hits inside the query's tenant and collection; [] if nothing is indexed yet."""
        ...

    async def collection_exists(self, name: str) -> bool:
        """Whether `ensure_collection` has created `name`."""
        ...

    async def ping(self) -> None:
        """Raise if the engine cannot serve requests."""
        ...

    async def close(self) -> None:
        """Release the engine; the store is unusable afterwards."""
        ...


class CollectionNotFoundError(LookupError):
    """A write named a collection that `ensure_collection` has not created."""

    def __init__(self, name: str) -> None:
        super().__init__(f"collection {name!r} does not exist: call ensure_collection first")
        self.name = name


def canonical_point_id(point_id: str) -> str:
    """The canonical (lowercase, hyphenated) form of a UUID point id; ValueError if not one."""
    try:
        return str(uuid.UUID(point_id))
    except (TypeError, ValueError) as exc:
        msg = f"point_id must be a UUID string, got {point_id!r}"
        raise ValueError(msg) from exc


def check_collection_name(name: str) -> str:
    """Refuse names that are not safe as both a Qdrant collection and a directory name."""
    if not _COLLECTION_NAME.match(name):
        msg = f"invalid collection name {name!r}: use letters, digits, '_', '-', '.'"
        raise ValueError(msg)
    return name


def dimension_mismatch(name: str, existing: int, requested: int) -> ValueError:
    """The error for a collection reopened with another embedding dimension."""
    return ValueError(
        f"collection {name!r} holds dense vectors of dimension {existing}, "
        f"not {requested}: a different embedding model needs its own collection"
    )


def check_dimension(name: str, expected: int, got: int) -> None:
    """Refuse a dense vector whose length is not the collection's dimension."""
    if got != expected:
        msg = f"collection {name!r} takes dense vectors of dimension {expected}, got {got}"
        raise ValueError(msg)


def check_query(query: SearchQuery) -> None:
    """Reject a query the engines cannot run: no vector for its mode, or top_k below 1."""
    if query.top_k < 1:
        msg = f"top_k must be at least 1, got {query.top_k}"
        raise ValueError(msg)
    needs_dense = query.mode in (SearchMode.DENSE, SearchMode.HYBRID)
    needs_sparse = query.mode in (SearchMode.SPARSE, SearchMode.HYBRID)
    if needs_dense and query.dense is None:
        msg = f"a {query.mode} search needs a dense query vector"
        raise ValueError(msg)
    if needs_sparse and query.sparse is None:
        msg = f"a {query.mode} search needs a sparse query vector"
        raise ValueError(msg)


def document_scope(
    *, tenant: str, collection: str, document_id: str | None = None
) -> list[PayloadMatch]:
    """The `must` conditions naming a tenant's collection, or one document in it."""
    scope = [PayloadMatch("tenant", (tenant,)), PayloadMatch("collection", (collection,))]
    if document_id is not None:
        scope.append(PayloadMatch("document_id", (document_id,)))
    return scope


def search_scope(query: SearchQuery) -> list[PayloadMatch]:
    """Every `must` condition of a search: tenant and collection first, then the caller's.

    The caller's conditions are only ever added beside the tenant's, so they narrow the
    search and can never reach another tenant's points.
    """
    scope = document_scope(tenant=query.tenant, collection=query.collection)
    return [*scope, *caller_conditions(query)]


def caller_conditions(query: SearchQuery) -> list[PayloadMatch]:
    """The conditions a caller adds inside its scope: metadata filters and document ids."""
    conditions: list[PayloadMatch] = []
    for key, wanted in query.filters.items():
        if not _METADATA_KEY.match(key):
            msg = f"invalid metadata filter key {key!r}: use letters, digits, '_', '-'"
            raise ValueError(msg)
        values = (wanted,) if isinstance(wanted, str) else tuple(wanted)
        conditions.append(PayloadMatch(f"metadata.{key}", values))
    if query.document_ids is not None:
        conditions.append(PayloadMatch("document_id", tuple(query.document_ids)))
    return conditions


def matches_nothing(scope: Sequence[PayloadMatch]) -> bool:
    """True when a condition is an any-of over no values, which no point can satisfy."""
    return any(not match.values for match in scope)


def prefetch_limit(top_k: int) -> int:
    """Candidates each half of a hybrid search contributes to fusion."""
    return top_k * HYBRID_PREFETCH_FACTOR


def open_vector_store(settings: ServiceSettings, *, engine: str = "edge") -> VectorStore:
    """The store the settings name: the server at QDRANT_URL, else an embedded engine.

    `engine` picks the embedded one at QDRANT_PATH: "edge" (Qdrant's engine in-process,
    HNSW) or "qdrant-local" (qdrant-client's local mode, exact brute force).
    """
    if engine not in ENGINES:
        msg = f"unknown vector store engine {engine!r}: choose one of {', '.join(ENGINES)}"
        raise ValueError(msg)
    # Imported here: each engine's module pulls in its own client library.
    from llmops_indexer.vector_store_qdrant import QdrantVectorStore

    if settings.qdrant_url:
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantVectorStore.for_server(settings.qdrant_url, api_key=api_key)
    path = Path(settings.qdrant_path)
    path.mkdir(parents=True, exist_ok=True)
    if engine == "qdrant-local":
        return QdrantVectorStore.for_local_path(path)
    from llmops_indexer.vector_store_edge import EdgeVectorStore

    return EdgeVectorStore(path)
