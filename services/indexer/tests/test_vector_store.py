"""The vector store against both embedded engines, each on a fresh directory.

qdrant-edge is the embedded default; qdrant-client's local mode receives the same calls
the Qdrant server gets in production. Every behaviour is proved on both.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmops.embedding.sparse import SparseVector
from llmops.settings import ServiceSettings
from llmops.testing import wait_until
from llmops_indexer.vector_store import (
    ChunkPoint,
    CollectionNotFoundError,
    FusionMethod,
    SearchMode,
    SearchQuery,
    VectorStore,
    open_vector_store,
)
from llmops_indexer.vector_store_edge import EdgeVectorStore
from llmops_indexer.vector_store_qdrant import QdrantVectorStore

ENGINES = ("edge", "qdrant-local")
DIM = 8
NAME = "chunks"


def settings_at(path: Path, **values: Any) -> ServiceSettings:
    return ServiceSettings.model_validate({"QDRANT_PATH": str(path), **values})


def unit(axis: int, *, lean: int | None = None, dimension: int = DIM) -> list[float]:
    """A unit vector along `axis`, tilted slightly towards `lean` when given."""
    vector = [0.0] * dimension
    vector[axis] = 1.0
    if lean is not None:
        vector[lean] = 0.1
    return vector


def chunk(
    dense: list[float],
    *,
    tenant: str = "acme",
    collection: str = "handbook",
    document_id: str = "doc-1",
    version: int = 1,
    ordinal: int = 0,
    terms: tuple[int, ...] = (1,),
    metadata: dict[str, str] | None = None,
) -> ChunkPoint:
    chunk_id = f"{document_id}:{version}:{ordinal}"
    return ChunkPoint(
        point_id=str(uuid.uuid5(uuid.NAMESPACE_URL, repr((tenant, collection, chunk_id)))),
        dense=dense,
        sparse=SparseVector(indices=list(terms), values=[1.0] * len(terms)),
        payload={
            "tenant": tenant,
            "collection": collection,
            "document_id": document_id,
            "document_version": version,
            "chunk_id": chunk_id,
            "ordinal": ordinal,
            "text": f"text of {chunk_id}",
            "title": "Handbook",
            "source": "upload",
            "metadata": metadata or {},
        },
    )


def dense_query(vector: list[float], *, top_k: int = 3, **fields: Any) -> SearchQuery:
    return SearchQuery(
        tenant=fields.pop("tenant", "acme"),
        collection=fields.pop("collection", "handbook"),
        top_k=top_k,
        mode=SearchMode.DENSE,
        dense=vector,
        **fields,
    )


def ids(hits: list[Any]) -> list[str]:
    return [hit.point_id for hit in hits]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(engine: str, tmp_path: Path) -> AsyncIterator[VectorStore]:
    opened = open_vector_store(settings_at(tmp_path / "qdrant"), engine=engine)
    await opened.ensure_collection(NAME, DIM)
    yield opened
    await opened.close()


async def test_ensure_collection_is_idempotent_and_refuses_another_dimension(
    store: VectorStore,
) -> None:
    point = chunk(unit(0))
    await store.upsert(NAME, [point])

    await store.ensure_collection(NAME, DIM)

    assert await store.count(NAME, tenant="acme", collection="handbook") == 1
    with pytest.raises(ValueError, match=r"dimension 8.*not 16"):
        await store.ensure_collection(NAME, 16)


async def test_upsert_then_search_finds_the_nearest(store: VectorStore) -> None:
    points = [chunk(unit(axis), ordinal=axis) for axis in range(3)]
    await store.upsert(NAME, points)

    hits = await store.search(NAME, dense_query(unit(1, lean=2)))

    assert ids(hits) == [points[1].point_id, points[2].point_id, points[0].point_id]
    assert hits[0].score > hits[1].score > hits[2].score
    assert hits[0].payload == points[1].payload


async def test_a_redelivered_batch_changes_nothing(store: VectorStore) -> None:
    points = [chunk(unit(axis), ordinal=axis) for axis in range(3)]
    await store.upsert(NAME, points)
    first = await store.search(NAME, dense_query(unit(0)))

    await store.upsert(NAME, points)

    assert await store.count(NAME, tenant="acme", collection="handbook") == 3
    assert await store.search(NAME, dense_query(unit(0))) == first


async def test_another_tenant_never_sees_the_points(store: VectorStore) -> None:
    theirs = chunk(unit(0), tenant="acme", document_id="secret", metadata={"team": "legal"})
    ours = chunk(unit(5), tenant="globex", document_id="ours", metadata={"team": "ops"})
    await store.upsert(NAME, [theirs, ours])

    naming_their_documents = dense_query(
        unit(0),
        top_k=10,
        tenant="globex",
        filters={"team": ["legal", "ops"]},
        document_ids=["secret", "ours"],
    )
    hits = await store.search(NAME, naming_their_documents)
    for mode in (SearchMode.SPARSE, SearchMode.HYBRID):
        other_modes = SearchQuery(
            tenant="globex",
            collection="handbook",
            top_k=10,
            mode=mode,
            dense=unit(0),
            sparse=SparseVector(indices=[1], values=[1.0]),
            document_ids=["secret"],
        )
        assert await store.search(NAME, other_modes) == []

    assert ids(hits) == [ours.point_id]
    assert await store.count(NAME, tenant="globex", collection="handbook") == 1
    secret = await store.count(NAME, tenant="globex", collection="handbook", document_id="secret")
    assert secret == 0
    removed = await store.delete_document(
        NAME, tenant="globex", collection="handbook", document_id="secret"
    )
    assert removed == 0
    assert await store.count(NAME, tenant="acme", collection="handbook") == 1


async def test_tenant_and_collection_names_cannot_blur_into_each_other(
    store: VectorStore,
) -> None:
    slashed_tenant = chunk(unit(0), tenant="a/b", collection="c")
    slashed_collection = chunk(unit(0), tenant="a", collection="b/c")
    await store.upsert(NAME, [slashed_tenant, slashed_collection])

    hits = await store.search(NAME, dense_query(unit(0), tenant="a", collection="b/c"))

    assert ids(hits) == [slashed_collection.point_id]
    assert await store.count(NAME, tenant="a/b", collection="c") == 1


async def test_collections_of_one_tenant_are_separate(store: VectorStore) -> None:
    handbook = chunk(unit(0), collection="handbook")
    contracts = chunk(unit(0), collection="contracts")
    await store.upsert(NAME, [handbook, contracts])

    hits = await store.search(NAME, dense_query(unit(0), collection="contracts"))

    assert ids(hits) == [contracts.point_id]
    assert await store.count(NAME, tenant="acme", collection="handbook") == 1


async def test_metadata_filters_match_a_value_or_any_of_several(store: VectorStore) -> None:
    legal = chunk(unit(0), ordinal=0, metadata={"team": "legal", "lang": "en"})
    ops = chunk(unit(1), ordinal=1, metadata={"team": "ops", "lang": "en"})
    sales = chunk(unit(2), ordinal=2, metadata={"team": "sales", "lang": "de"})
    await store.upsert(NAME, [legal, ops, sales])

    equal = await store.search(NAME, dense_query(unit(0), filters={"team": "ops"}))
    any_of = await store.search(NAME, dense_query(unit(0), filters={"team": ["ops", "sales"]}))
    both = await store.search(NAME, dense_query(unit(0), filters={"team": ["ops"], "lang": "de"}))
    none_of_nothing = await store.search(NAME, dense_query(unit(0), filters={"team": []}))

    assert ids(equal) == [ops.point_id]
    assert set(ids(any_of)) == {ops.point_id, sales.point_id}
    assert both == []
    assert none_of_nothing == []


async def test_document_ids_restrict_the_search(store: VectorStore) -> None:
    first = chunk(unit(0), document_id="a")
    second = chunk(unit(1), document_id="b")
    await store.upsert(NAME, [first, second])

    hits = await store.search(NAME, dense_query(unit(0), document_ids=["b"]))

    assert ids(hits) == [second.point_id]
    assert await store.search(NAME, dense_query(unit(0), document_ids=[])) == []


async def test_delete_document_keeps_only_the_named_version(store: VectorStore) -> None:
    old = [chunk(unit(axis), version=1, ordinal=axis) for axis in range(3)]
    new = [chunk(unit(axis), version=2, ordinal=axis) for axis in range(2)]
    other = chunk(unit(0), document_id="doc-2")
    await store.upsert(NAME, [*old, *new, other])

    removed = await store.delete_document(
        NAME, tenant="acme", collection="handbook", document_id="doc-1", keep_version=2
    )

    assert removed == 3
    assert await store.count(NAME, tenant="acme", collection="handbook", document_id="doc-1") == 2
    hits = await store.search(NAME, dense_query(unit(0), top_k=10, document_ids=["doc-1"]))
    assert {hit.payload["document_version"] for hit in hits} == {2}
    assert await store.count(NAME, tenant="acme", collection="handbook", document_id="doc-2") == 1


async def test_delete_document_without_a_version_removes_it_all(store: VectorStore) -> None:
    await store.upsert(NAME, [chunk(unit(axis), version=axis, ordinal=axis) for axis in range(3)])

    removed = await store.delete_document(
        NAME, tenant="acme", collection="handbook", document_id="doc-1"
    )

    assert removed == 3
    assert await store.count(NAME, tenant="acme", collection="handbook") == 0
    assert await store.search(NAME, dense_query(unit(0))) == []


RARE_TERM = 777


@pytest.fixture
async def lexical_and_semantic(store: VectorStore) -> tuple[ChunkPoint, ChunkPoint]:
    """One chunk only the rare term finds, one the dense query finds; fillers around them."""
    exact_term = chunk(unit(7), ordinal=0, terms=(RARE_TERM, 3))
    semantic = chunk(unit(0), ordinal=1, terms=(4, 5))
    fillers = [chunk(unit(0, lean=axis), ordinal=10 + axis, terms=(4, 6)) for axis in (1, 2, 3)]
    await store.upsert(NAME, [exact_term, semantic, *fillers])
    return exact_term, semantic


async def test_sparse_search_finds_an_exact_term_that_dense_misses(
    store: VectorStore, lexical_and_semantic: tuple[ChunkPoint, ChunkPoint]
) -> None:
    exact_term, semantic = lexical_and_semantic
    terms = SparseVector(indices=[RARE_TERM], values=[1.0])

    dense = await store.search(NAME, dense_query(unit(0), top_k=4))
    sparse = await store.search(
        NAME,
        SearchQuery(
            tenant="acme", collection="handbook", top_k=4, mode=SearchMode.SPARSE, sparse=terms
        ),
    )

    assert exact_term.point_id not in ids(dense)
    assert ids(dense)[0] == semantic.point_id
    assert ids(sparse) == [exact_term.point_id]


@pytest.mark.parametrize("fusion", list(FusionMethod))
async def test_hybrid_search_returns_hits_of_both_halves(
    store: VectorStore,
    lexical_and_semantic: tuple[ChunkPoint, ChunkPoint],
    fusion: FusionMethod,
) -> None:
    exact_term, semantic = lexical_and_semantic

    hits = await store.search(
        NAME,
        SearchQuery(
            tenant="acme",
            collection="handbook",
            top_k=2,
            mode=SearchMode.HYBRID,
            dense=unit(0),
            sparse=SparseVector(indices=[RARE_TERM], values=[1.0]),
            fusion=fusion,
        ),
    )

    assert set(ids(hits)) == {exact_term.point_id, semantic.point_id}
    assert all(hit.payload["tenant"] == "acme" for hit in hits)


@pytest.mark.parametrize(
    ("mode", "dense", "sparse"),
    [
        (SearchMode.DENSE, None, SparseVector(indices=[1], values=[1.0])),
        (SearchMode.SPARSE, unit(0), None),
        (SearchMode.HYBRID, unit(0), None),
        (SearchMode.HYBRID, None, SparseVector(indices=[1], values=[1.0])),
    ],
)
async def test_a_search_without_the_vector_its_mode_needs_is_refused(
    store: VectorStore,
    mode: SearchMode,
    dense: list[float] | None,
    sparse: SparseVector | None,
) -> None:
    query = SearchQuery(
        tenant="acme", collection="handbook", top_k=3, mode=mode, dense=dense, sparse=sparse
    )

    with pytest.raises(ValueError, match=f"{mode} search needs a"):
        await store.search(NAME, query)


async def test_a_missing_collection_holds_nothing(store: VectorStore) -> None:
    assert not await store.collection_exists("never-made")
    assert await store.search("never-made", dense_query(unit(0))) == []
    assert await store.count("never-made", tenant="acme", collection="handbook") == 0
    removed = await store.delete_document(
        "never-made", tenant="acme", collection="handbook", document_id="doc-1"
    )
    assert removed == 0
    with pytest.raises(CollectionNotFoundError):
        await store.upsert("never-made", [chunk(unit(0))])
    assert await store.collection_exists(NAME)


async def test_vectors_of_another_dimension_are_refused(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="dimension 8, got 3"):
        await store.upsert(NAME, [chunk([1.0, 0.0, 0.0])])

    assert await store.count(NAME, tenant="acme", collection="handbook") == 0


async def test_a_point_id_must_be_a_uuid() -> None:
    with pytest.raises(ValueError, match="UUID"):
        ChunkPoint(point_id="chunk-1", dense=unit(0), sparse=SparseVector([], []), payload={})


async def test_reopening_keeps_points_and_the_dimension(engine: str, tmp_path: Path) -> None:
    settings = settings_at(tmp_path / "qdrant")
    first = open_vector_store(settings, engine=engine)
    await first.ensure_collection(NAME, DIM)
    points = [chunk(unit(axis), ordinal=axis) for axis in range(3)]
    await first.upsert(NAME, points)
    await first.close()

    reopened = open_vector_store(settings, engine=engine)
    try:
        assert await reopened.collection_exists(NAME)
        hits = await reopened.search(NAME, dense_query(unit(2)))
        assert ids(hits)[0] == points[2].point_id
        assert await reopened.count(NAME, tenant="acme", collection="handbook") == 3
        with pytest.raises(ValueError, match=r"dimension 8.*not 4"):
            await reopened.ensure_collection(NAME, 4)
        await reopened.ensure_collection(NAME, DIM)
    finally:
        await reopened.close()


_WRITE_AND_DIE = textwrap.dedent(
    """
    import asyncio, os, sys, uuid
    from llmops.embedding.sparse import SparseVector
    from llmops.settings import ServiceSettings
    from llmops_indexer.vector_store import ChunkPoint, open_vector_store

    async def main() -> None:
        settings = ServiceSettings.model_validate({"QDRANT_PATH": sys.argv[1]})
        store = open_vector_store(settings, engine=sys.argv[2])
        await store.ensure_collection("chunks", 8)
        points = [
            ChunkPoint(
                point_id=str(uuid.uuid4()),
                dense=[1.0] + [0.0] * 7,
                sparse=SparseVector([1], [1.0]),
                payload={"tenant": "acme", "collection": "handbook", "document_id": "d"},
            )
            for _ in range(5)
        ]
        await store.upsert("chunks", points)
        os._exit(0)  # no close, no flush: only what upsert made durable survives

    asyncio.run(main())
    """
)


async def test_points_are_durable_once_upsert_returns(engine: str, tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    subprocess.run(  # noqa: ASYNC221  # a short-lived child that must die without closing
        [sys.executable, "-c", _WRITE_AND_DIE, str(path), engine], check=True, timeout=120
    )

    store = open_vector_store(settings_at(path), engine=engine)
    try:
        assert await store.count("chunks", tenant="acme", collection="handbook") == 5
    finally:
        await store.close()


async def test_ping_answers_while_open_and_fails_once_closed(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path / "edge")
    await store.ensure_collection(NAME, DIM)
    await store.ping()

    await store.close()

    with pytest.raises(RuntimeError, match="closed"):
        await store.ping()


async def test_open_vector_store_prefers_the_server_at_qdrant_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[str, str | None]] = []

    def for_server(url: str, *, api_key: str | None = None) -> QdrantVectorStore:
        opened.append((url, api_key))
        return QdrantVectorStore.for_local_path(tmp_path / "stand-in")

    monkeypatch.setattr(QdrantVectorStore, "for_server", staticmethod(for_server))
    settings = settings_at(
        tmp_path / "unused", QDRANT_URL="http://qdrant:6333", QDRANT_API_KEY="s3cret"
    )

    store = open_vector_store(settings, engine="edge")
    await store.close()

    assert isinstance(store, QdrantVectorStore)
    assert opened == [("http://qdrant:6333", "s3cret")]
    assert not (tmp_path / "unused").exists()


async def test_open_vector_store_embeds_the_chosen_engine_at_qdrant_path(
    tmp_path: Path,
) -> None:
    edge = open_vector_store(settings_at(tmp_path / "deep" / "edge"))
    local = open_vector_store(settings_at(tmp_path / "deep" / "local"), engine="qdrant-local")
    await edge.close()
    await local.close()

    assert isinstance(edge, EdgeVectorStore)
    assert isinstance(local, QdrantVectorStore)
    assert (tmp_path / "deep" / "edge").is_dir()
    assert (tmp_path / "deep" / "local").is_dir()
    with pytest.raises(ValueError, match="edge, qdrant-local"):
        open_vector_store(settings_at(tmp_path / "x"), engine="faiss")


async def test_edge_optimises_in_the_background_once_writes_settle(tmp_path: Path) -> None:
    dimension = 384
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((8_000, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = EdgeVectorStore(tmp_path / "edge", optimize_idle_s=0.2)
    try:
        await store.ensure_collection(NAME, dimension)
        for start in range(0, len(vectors), 1_000):
            batch = [
                chunk(vectors[row].tolist(), ordinal=row) for row in range(start, start + 1_000)
            ]
            await store.upsert(NAME, batch)
        query = dense_query(vectors[42].tolist(), top_k=5)
        exact = np.argsort(-(vectors @ vectors[42]))[:5]

        await wait_until(lambda: store.optimizations_run >= 1, what="background optimisation")

        hits = await store.search(NAME, query)
        assert [hit.payload["ordinal"] for hit in hits] == exact.tolist()
        assert not await store.optimize(NAME)
    finally:
        await store.close()
