"""What ingestion knows about each document: its current version and fingerprints.

Versions only grow: re-ingesting changed content makes version n+1 (the indexer then
drops version n's chunks); deleting a document makes an empty version. The fingerprints
find exact duplicates (same normalised text) and near duplicates (MinHash LSH bands,
matched with one indexed `$in` query) among the live documents of a collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.storage import MongoDocument
from llmops_ingestion.dedup import MinHasher


@dataclass(frozen=True)
class DocumentRecord:
    """The live version of a document."""

    tenant: str
    collection: str
    document_id: str
    source: str
    version: int
    content_sha256: str
    fingerprint: str
    request_event_id: str
    deleted: bool


@dataclass(frozen=True)
class DocumentVersion:
    """A version being written: content identity and similarity fingerprints."""

    source: str
    content_sha256: str
    fingerprint: str
    signature: Sequence[int]
    bands: Sequence[str]
    request_event_id: str
    job_id: str


class DocumentRegistry:
    """The `documents` collection: one record per (tenant, document id)."""

    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._documents = db["documents"]

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        documents = db["documents"]
        await documents.create_index(
            [("tenant", ASCENDING), ("collection", ASCENDING), ("fingerprint", ASCENDING)]
        )
        await documents.create_index(
            [("tenant", ASCENDING), ("collection", ASCENDING), ("bands", ASCENDING)]
        )

    @staticmethod
    def _key(tenant: str, document_id: str) -> str:
        return f"{tenant}/{document_id}"

    async def current(self, tenant: str, document_id: str) -> DocumentRecord | None:
        found = await self._documents.find_one({"_id": self._key(tenant, document_id)})
        return None if found is None else _record(found)

    async def exact_duplicate(
        self, tenant: str, collection: str, fingerprint: str, *, excluding: str
    ) -> DocumentRecord | None:
        """A live document of the collection with the same normalised text."""
        found = await self._documents.find_one(
            {
                "tenant": tenant,
                "collection": collection,
                "fingerprint": fingerprint,
                "deleted": False,
                "document_id": {"$ne": excluding},
            }
        )
        return None if found is None else _record(found)

    async def near_duplicate(
        self,
        tenant: str,
        collection: str,
        signature: Sequence[int],
        bands: Sequence[str],
        *,
        excluding: str,
        threshold: float,
    ) -> tuple[DocumentRecord, float] | None:
        """The most similar live document sharing an LSH band, if similar enough."""
        cursor = self._documents.find(
            {
                "tenant": tenant,
                "collection": collection,
                "bands": {"$in": list(bands)},
                "deleted": False,
                "document_id": {"$ne": excluding},
            }
        )
        best: tuple[DocumentRecord, float] | None = None
        async for found in cursor:
            similarity = MinHasher.similarity(signature, found["signature"])
            if similarity >= threshold and (best is None or similarity > best[1]):
                best = (_record(found), similarity)
        return best

    async def write_version(
        self, tenant: str, collection: str, document_id: str, version: int, new: DocumentVersion
    ) -> None:
        """Make `version` the live one (idempotent: a redelivery writes the same fields)."""
        await self._documents.update_one(
            {"_id": self._key(tenant, document_id)},
            {
                "$set": {
                    "tenant": tenant,
                    "collection": collection,
                    "document_id": document_id,
                    "source": new.source,
                    "version": version,
                    "content_sha256": new.content_sha256,
                    "fingerprint": new.fingerprint,
                    "signature": list(new.signature),
                    "bands": list(new.bands),
                    "request_event_id": new.request_event_id,
                    "job_id": new.job_id,
                    "deleted": False,
                    "updated_at": datetime.now(UTC),
                }
            },
            upsert=True,
        )

    async def write_deletion(self, record: DocumentRecord, version: int) -> None:
        """Record the empty version that removes the document from search."""
        await self._documents.update_one(
            {"_id": self._key(record.tenant, record.document_id)},
            {
                "$set": {
                    "version": version,
                    "deleted": True,
                    "fingerprint": "",
                    "bands": [],
                    "signature": [],
                    "updated_at": datetime.now(UTC),
                }
            },
        )


def _record(found: MongoDocument) -> DocumentRecord:
    return DocumentRecord(
        tenant=found["tenant"],
        collection=found["collection"],
        document_id=found["document_id"],
        source=found["source"],
        version=found["version"],
        content_sha256=found["content_sha256"],
        fingerprint=found["fingerprint"],
        request_event_id=found.get("request_event_id", ""),
        deleted=found.get("deleted", False),
    )
