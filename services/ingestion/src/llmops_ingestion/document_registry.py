"""What ingestion knows about each document: its current version and fingerprints.

Versions only grow: re-ingesting changed content makes version n+1 (the indexer then
drops version n's chunks); deleting a document makes an empty version. The fingerprints
find exact duplicates (same normalised text) and near duplicates (MinHash LSH bands)
among the live documents of a collection.

Every lookup goes by `_id`: the fingerprint and each band key of a collection are
documents of their own (`document_fingerprints`, `document_bands`) naming the documents
that have them. A query on any other field is a full scan on servers that push only
`_id` filters down (FerretDB's SQLite backend), which made ingestion quadratic. That
backend also scans the collection for every update, so keys are inserted when new (most
band keys of a document are) and updated only when another document holds them too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from llmops.storage import MongoDocument, insert_new
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
        self._fingerprints = db["document_fingerprints"]
        self._bands = db["document_bands"]

    @staticmethod
    def _key(tenant: str, document_id: str) -> str:
        return f"{tenant}/{document_id}"

    @staticmethod
    def _scoped(tenant: str, collection: str, value: str) -> str:
        return f"{tenant}/{collection}/{value}"

    async def current(self, tenant: str, document_id: str) -> DocumentRecord | None:
        found = await self._documents.find_one({"_id": self._key(tenant, document_id)})
        return None if found is None else _record(found)

    async def exact_duplicate(
        self, tenant: str, collection: str, fingerprint: str, *, excluding: str
    ) -> DocumentRecord | None:
        """A live document of the collection with the same normalised text."""
        holders = await self._fingerprints.find_one(
            {"_id": self._scoped(tenant, collection, fingerprint)}
        )
        for document_id in holders["documents"] if holders else []:
            if document_id == excluding:
                continue
            record = await self.current(tenant, document_id)
            if record and not record.deleted and record.fingerprint == fingerprint:
                return record
        return None

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
        lookups = [
            self._bands.find_one({"_id": self._scoped(tenant, collection, band)}) for band in bands
        ]
        candidates: set[str] = set()
        for holders in await asyncio.gather(*lookups):
            candidates.update(holders["documents"] if holders else ())
        candidates.discard(excluding)
        best: tuple[DocumentRecord, float] | None = None
        for document_id in sorted(candidates):
            found = await self._documents.find_one({"_id": self._key(tenant, document_id)})
            if found is None or found.get("deleted") or not set(bands) & set(found["bands"]):
                continue  # gone, or no longer has the band (changed since)
            if len(found["signature"]) != len(signature):
                continue  # written under another MinHash configuration: not comparable
            similarity = MinHasher.similarity(signature, found["signature"])
            if similarity >= threshold and (best is None or similarity > best[1]):
                best = (_record(found), similarity)
        return best

    async def write_version(
        self, tenant: str, collection: str, document_id: str, version: int, new: DocumentVersion
    ) -> None:
        """Make `version` the live one (idempotent: a redelivery writes the same fields)."""
        keys = [self._scoped(tenant, collection, new.fingerprint)]
        await self._hold(self._fingerprints, keys, document_id)
        await self._hold(
            self._bands, [self._scoped(tenant, collection, band) for band in new.bands], document_id
        )
        fields = {
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
        key = self._key(tenant, document_id)
        if await insert_new(self._documents, [{"_id": key, **fields}]):
            await self._documents.update_one({"_id": key}, {"$set": fields})

    @staticmethod
    async def _hold(
        index: AsyncCollection[MongoDocument], keys: Sequence[str], document_id: str
    ) -> None:
        """Add `document_id` to the holders of each key (idempotent)."""
        taken = await insert_new(index, [{"_id": key, "documents": [document_id]} for key in keys])
        if taken:
            holds = {"$addToSet": {"documents": document_id}}
            await index.bulk_write(
                [UpdateOne({"_id": key}, holds) for key in sorted(taken)], ordered=False
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
