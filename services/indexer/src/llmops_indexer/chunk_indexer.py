"""Index chunk batches: embed, upsert under the chunk ids, retire old versions.

Point ids are the chunk ids, so a redelivered batch rewrites the same points. Which
batches of a document version have arrived is kept in MongoDB (`index_progress`); when
the last one lands, older versions' points are deleted and `docs.indexed` is published
under an id derived from the version, so a republished one is a recognisable duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from llmops.bus import EventBus
from llmops.embedding.batching import EncodeBatcher
from llmops.embedding.dense import DenseEncoder
from llmops.embedding.sparse import Bm25Encoder
from llmops.events.catalog import CONTRACTS, Chunk, ChunkBatch, DocumentIndexed, Topic
from llmops.events.envelope import Envelope
from llmops.group_commit import GroupCommit
from llmops.rag.ids import indexed_event_id, vector_collection_name
from llmops.storage import MongoDocument, insert_new
from llmops.telemetry import get_logger
from llmops_indexer.vector_store import ChunkPoint, VectorStore

_log = get_logger(__name__)
_VERSIONS = "latest-versions"
"""The one group key of `_record_versions`: every document's versions are written together."""


def embedding_text(chunk: Chunk) -> str:
    """The text a chunk is embedded as (what the raw-encode benchmark encodes too)."""
    return chunk.text


class ChunkIndexer:
    """The `docs.chunked` handler. The bus runs it for several documents at once; their
    chunks are encoded together, in batches of the encoder's size (`EncodeBatcher`)."""

    def __init__(
        self,
        *,
        store: VectorStore,
        dense: DenseEncoder,
        batcher: EncodeBatcher,
        sparse: Bm25Encoder,
        db: AsyncDatabase[MongoDocument],
        bus: EventBus,
    ) -> None:
        self._store = store
        self._dense = dense
        self._batcher = batcher
        self._sparse = sparse
        self._latest = db["index_latest_versions"]
        self._progress = db["index_progress"]
        self._bus = bus
        self._ready: set[str] = set()
        self._versions_seen: GroupCommit[tuple[str, int], int] = GroupCommit(self._record_versions)

    def vector_collection(self, collection: str) -> str:
        return vector_collection_name(collection, self._dense.model)

    async def _ensure(self, name: str) -> None:
        if name not in self._ready:
            await self._store.ensure_collection(name, self._dense.dimension)
            self._ready.add(name)

    async def on_chunks(self, event: Envelope[ChunkBatch]) -> None:
        batch, tenant = event.data, event.tenant
        key = f"{tenant}/{batch.document_id}"
        if await self._latest_version(key, batch.document_version) > batch.document_version:
            _log.info("stale chunk batch ignored", document_id=batch.document_id)
            return
        name = self.vector_collection(batch.collection)
        await self._ensure(name)
        if batch.chunks:
            await self._store.upsert(name, await self._points(tenant, batch))
        arrived = await self._arrived(f"{key}@{batch.document_version}", batch)
        if len(arrived) >= batch.batch_count:
            await self._complete(event, name, sum(arrived.values()))

    async def _latest_version(self, key: str, version: int) -> int:
        """Record `version` of the document `key` as seen; the newest version seen so far.

        Written with the versions of the batches handled alongside (`_record_versions`).
        """
        return (await self._versions_seen.submit(_VERSIONS, (key, version))).value

    async def _record_versions(self, _: str, seen: list[tuple[str, int]]) -> Sequence[int]:
        """One insert for the documents' first versions (the usual case; inserting is
        cheap, see storage), then `$max` on each document seen before."""
        existing = await insert_new(
            self._latest, [{"_id": key, "latest_version": version} for key, version in seen]
        )
        latest: list[int] = []
        for key, version in seen:
            if key in existing:
                found = await self._latest.find_one_and_update(
                    {"_id": key},
                    {"$max": {"latest_version": version}},
                    return_document=ReturnDocument.AFTER,
                )
                version = int(found["latest_version"]) if found else version
            latest.append(version)
        return latest

    async def _arrived(self, key: str, batch: ChunkBatch) -> dict[str, int]:
        """Record that this batch of a version is indexed; chunk counts of all that are."""
        index, chunks = str(batch.batch_index), len(batch.chunks)
        if batch.batch_count == 1:
            return {index: chunks}  # the only batch: nothing to wait for, nothing to record
        if not await insert_new(self._progress, [{"_id": key, "chunks": {index: chunks}}]):
            return {index: chunks}
        arrived = await self._progress.find_one_and_update(
            {"_id": key},
            {"$set": {f"chunks.{index}": chunks}},
            return_document=ReturnDocument.AFTER,
        )
        return dict(arrived["chunks"]) if arrived else {index: chunks}

    async def _points(self, tenant: str, batch: ChunkBatch) -> list[ChunkPoint]:
        texts = [embedding_text(chunk) for chunk in batch.chunks]
        dense = await self._batcher.encode(texts)  # with the batches handled alongside
        sparse = self._sparse.encode_documents(texts)
        return [
            ChunkPoint(
                point_id=chunk.chunk_id,
                dense=dense[i].tolist(),
                sparse=sparse[i],
                payload=_payload(tenant, batch, chunk),
            )
            for i, chunk in enumerate(batch.chunks)
        ]

    async def _complete(self, event: Envelope[ChunkBatch], name: str, chunk_count: int) -> None:
        batch, tenant = event.data, event.tenant
        removed = await self._store.delete_document(
            name,
            tenant=tenant,
            collection=batch.collection,
            document_id=batch.document_id,
            keep_version=batch.document_version,
        )
        indexed = DocumentIndexed(
            job_id=batch.job_id,
            document_id=batch.document_id,
            document_version=batch.document_version,
            collection=batch.collection,
            vector_collection=name,
            embedding_model=self._dense.model,
            chunk_count=chunk_count,
            chunks_removed=removed,
        )
        await self._bus.emit(
            CONTRACTS[Topic.DOCS_INDEXED],
            indexed,
            tenant=tenant,
            subject=batch.document_id,
            event_id=indexed_event_id(tenant, batch.document_id, batch.document_version),
        )
        _log.info(
            "document indexed",
            document_id=batch.document_id,
            version=batch.document_version,
            chunks=chunk_count,
            removed=removed,
        )


def _payload(tenant: str, batch: ChunkBatch, chunk: Chunk) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "collection": batch.collection,
        "document_id": batch.document_id,
        "document_version": batch.document_version,
        "chunk_id": chunk.chunk_id,
        "ordinal": chunk.ordinal,
        "text": chunk.text,
        "title": batch.title,
        "source": batch.source,
        "metadata": dict(chunk.metadata),
    }
