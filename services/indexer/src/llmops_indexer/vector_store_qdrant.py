"""The vector store on qdrant-client: the Qdrant server in production, local mode on a path.

Both modes receive the same calls, so the local-mode tests exercise what the server gets.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from pathlib import Path

from qdrant_client import AsyncQdrantClient, models

from llmops_indexer.vector_store import (
    DENSE_VECTOR,
    INTEGER_INDEXES,
    KEYWORD_INDEXES,
    RRF_K,
    SPARSE_VECTOR,
    ChunkPoint,
    CollectionNotFoundError,
    FusionMethod,
    PayloadMatch,
    SearchHit,
    SearchMode,
    SearchQuery,
    check_collection_name,
    check_dimension,
    check_query,
    dimension_mismatch,
    document_scope,
    matches_nothing,
    prefetch_limit,
    search_scope,
)

_INDEX_SCHEMAS: dict[str, models.PayloadSchemaType] = {
    **dict.fromkeys(KEYWORD_INDEXES, models.PayloadSchemaType.KEYWORD),
    **dict.fromkeys(INTEGER_INDEXES, models.PayloadSchemaType.INTEGER),
}


class QdrantVectorStore:
    """`VectorStore` over `AsyncQdrantClient`; build it with `for_server` or `for_local_path`."""

    def __init__(self, client: AsyncQdrantClient, *, local: bool = False) -> None:
        self._client = client
        self._local = local
        # Dense dimension of each collection this instance has seen, and those it ensured.
        self._dimensions: dict[str, int] = {}
        self._ensured: set[str] = set()
        # Writes to one collection are serialised so delete_document's count is its own.
        self._write_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def for_server(cls, url: str, *, api_key: str | None = None) -> QdrantVectorStore:
        """A store on the Qdrant server at `url`."""
        return cls(AsyncQdrantClient(url=url, api_key=api_key))

    @classmethod
    def for_local_path(cls, path: Path) -> QdrantVectorStore:
        """A store in qdrant-client's local mode at `path` (exact search, one process)."""
        path.mkdir(parents=True, exist_ok=True)
        return cls(AsyncQdrantClient(path=str(path)), local=True)

    async def ensure_collection(self, name: str, dimension: int) -> None:
        """Create the collection and its payload indexes if missing; check the dimension."""
        check_collection_name(name)
        if name in self._ensured:
            known = self._dimensions[name]
            if known != dimension:
                raise dimension_mismatch(name, known, dimension)
            return
        async with self._write_lock(name):
            if not await self._client.collection_exists(name):
                await self._client.create_collection(
                    name,
                    vectors_config={
                        DENSE_VECTOR: models.VectorParams(
                            size=dimension, distance=models.Distance.COSINE
                        )
                    },
                    sparse_vectors_config={
                        SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                )
            info = await self._client.get_collection(name)
            existing = _dense_size(name, info)
            if existing != dimension:
                raise dimension_mismatch(name, existing, dimension)
            # Indexes are created on every first ensure, not only with the collection, so a
            # crash between the two leaves nothing missing.
            for field_name, schema in _INDEX_SCHEMAS.items():
                if field_name not in info.payload_schema:
                    await self._create_payload_index(name, field_name, schema)
            self._dimensions[name] = dimension
            self._ensured.add(name)

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        """Write points by id and wait until the engine has applied them."""
        dimension = await self._dimension(name)
        for point in points:
            check_dimension(name, dimension, len(point.dense))
        if not points:
            return
        structs = [
            models.PointStruct(
                id=point.point_id,
                vector={
                    DENSE_VECTOR: list(point.dense),
                    SPARSE_VECTOR: models.SparseVector(
                        indices=list(point.sparse.indices), values=list(point.sparse.values)
                    ),
                },
                payload=point.payload,
            )
            for point in points
        ]
        async with self._write_lock(name):
            await self._client.upsert(name, points=structs, wait=True)

    async def delete_document(
        self,
        name: str,
        *,
        tenant: str,
        collection: str,
        document_id: str,
        keep_version: int | None = None,
    ) -> int:
        """Delete a document's points, all or those of other versions; return how many.

        The count is exact for writes through this store; on a server shared by several
        writers of the same document it is the count just before the delete.
        """
        if not await self._client.collection_exists(name):
            return 0
        scope = document_scope(tenant=tenant, collection=collection, document_id=document_id)
        must_not: list[models.Condition] = []
        if keep_version is not None:
            must_not.append(
                models.FieldCondition(
                    key="document_version", match=models.MatchValue(value=keep_version)
                )
            )
        selector = models.Filter(must=_conditions(scope), must_not=must_not or None)
        async with self._write_lock(name):
            doomed = (await self._client.count(name, count_filter=selector, exact=True)).count
            if doomed:
                await self._client.delete(
                    name, points_selector=models.FilterSelector(filter=selector), wait=True
                )
        return doomed

    async def count(
        self, name: str, *, tenant: str, collection: str, document_id: str | None = None
    ) -> int:
        """Exact count of a tenant's collection, or of one document in it."""
        if not await self._client.collection_exists(name):
            return 0
        scope = document_scope(tenant=tenant, collection=collection, document_id=document_id)
        result = await self._client.count(
            name, count_filter=models.Filter(must=_conditions(scope)), exact=True
        )
        return result.count

    async def search(self, name: str, query: SearchQuery) -> list[SearchHit]:
        """Dense, sparse or hybrid search inside the query's tenant and collection."""
        check_query(query)
        scope = search_scope(query)
        if matches_nothing(scope) or not await self._client.collection_exists(name):
            return []
        scoped = models.Filter(must=_conditions(scope))
        if query.mode is SearchMode.HYBRID:
            limit = prefetch_limit(query.top_k)
            response = await self._client.query_points(
                name,
                prefetch=[
                    models.Prefetch(
                        query=_dense(query), using=DENSE_VECTOR, filter=scoped, limit=limit
                    ),
                    models.Prefetch(
                        query=_sparse(query), using=SPARSE_VECTOR, filter=scoped, limit=limit
                    ),
                ],
                query=_fusion(query.fusion),
                query_filter=scoped,
                limit=query.top_k,
                with_payload=True,
            )
        else:
            dense = query.mode is SearchMode.DENSE
            response = await self._client.query_points(
                name,
                query=_dense(query) if dense else _sparse(query),
                using=DENSE_VECTOR if dense else SPARSE_VECTOR,
                query_filter=scoped,
                limit=query.top_k,
                with_payload=True,
            )
        return [
            SearchHit(point_id=str(point.id), score=point.score, payload=point.payload or {})
            for point in response.points
        ]

    async def collection_exists(self, name: str) -> bool:
        """Whether the collection exists on the engine."""
        return await self._client.collection_exists(name)

    async def ping(self) -> None:
        """Raise unless the engine answers."""
        await self._client.get_collections()

    async def close(self) -> None:
        """Close the client (and release the local-mode path)."""
        await self._client.close()

    async def _dimension(self, name: str) -> int:
        """The collection's dense dimension; CollectionNotFoundError if it does not exist."""
        known = self._dimensions.get(name)
        if known is not None:
            return known
        if not await self._client.collection_exists(name):
            raise CollectionNotFoundError(name)
        dimension = _dense_size(name, await self._client.get_collection(name))
        self._dimensions[name] = dimension
        return dimension

    def _write_lock(self, name: str) -> asyncio.Lock:
        return self._write_locks.setdefault(name, asyncio.Lock())

    async def _create_payload_index(
        self, name: str, field_name: str, schema: models.PayloadSchemaType
    ) -> None:
        with warnings.catch_warnings():
            if self._local:
                # Local mode records the schema but warns that it cannot use it; expected here.
                warnings.filterwarnings(
                    "ignore", message="Payload indexes have no effect", category=UserWarning
                )
            await self._client.create_payload_index(
                name, field_name=field_name, field_schema=schema, wait=True
            )


def _dense_size(name: str, info: models.CollectionInfo) -> int:
    vectors = info.config.params.vectors
    params = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
    if params is None:
        msg = f"collection {name!r} exists without a {DENSE_VECTOR!r} vector"
        raise ValueError(msg)
    return params.size


def _conditions(scope: Sequence[PayloadMatch]) -> list[models.Condition]:
    conditions: list[models.Condition] = []
    for match in scope:
        if len(match.values) == 1:
            condition: models.Match = models.MatchValue(value=match.values[0])
        else:
            condition = models.MatchAny(any=list(match.values))
        conditions.append(models.FieldCondition(key=match.key, match=condition))
    return conditions


def _dense(query: SearchQuery) -> list[float]:
    assert query.dense is not None  # check_query ran
    return list(query.dense)


def _sparse(query: SearchQuery) -> models.SparseVector:
    assert query.sparse is not None  # check_query ran
    return models.SparseVector(indices=list(query.sparse.indices), values=list(query.sparse.values))


def _fusion(method: FusionMethod) -> models.Query:
    if method is FusionMethod.DBSF:
        return models.FusionQuery(fusion=models.Fusion.DBSF)
    return models.RrfQuery(rrf=models.Rrf(k=RRF_K))
