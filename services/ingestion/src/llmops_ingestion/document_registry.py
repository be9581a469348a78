"""What ingestion knows about each document: its current version and fingerprints.

Versions only grow: re-ingesting changed content makes version n+1 (the indexer then
drops version n's chunks); deleting a document makes an empty version. The fingerprints
find exact duplicates (same normalised text) and near duplicates (MinHash LSH bands)
among the live documents of a collection.

Duplicates are looked up in a `CollectionIndex` held in memory. Each version's MinHash
signature and bands are a record of their own (`document_signatures`, written once), so
the `documents` records stay small: FerretDB's SQLite backend (local runs and tests)
decodes a whole record for every lookup, and records with 160 array values made each
lookup several times dearer. (Stock FerretDB 1.24 also scanned the whole collection for
every `_id` lookup and update, which multiplied that by the collection's size; the dev
stack's build uses the `_id` index, ADR 15.)

Keeping the index current across processes: each write to a collection's documents is
numbered by inserting change record n+1 (`document_changes`, `_id`
"<tenant>/<collection>#<n>"; an insert is atomic on MongoDB and FerretDB alike, an `$inc`
is not on FerretDB), then raising the collection's `last_change` (`document_collections`).
Before each check the index reads `last_change` (one lookup that finds its record) and is
loaded again when another process wrote. On FerretDB two writers raising `last_change`
at the same instant can leave it one short until the collection's next write, so one of
the two documents can be missed by the other process's checks until then; on MongoDB
`$max` is atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from llmops.storage import MongoDocument, insert_new, upsert
from llmops_ingestion.collection_index import CollectionIndex, DocumentRecord
from llmops_ingestion.dedup import MinHashConfig

__all__ = ["DocumentRecord", "DocumentRegistry", "DocumentVersion"]


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
    """The `documents` collection (one record per (tenant, document id)), the signatures
    of their versions and, per collection, the in-memory index of its live documents."""

    def __init__(self, db: AsyncDatabase[MongoDocument], config: MinHashConfig) -> None:
        self._documents = db["documents"]
        self._signatures = db["document_signatures"]
        self._changes = db["document_changes"]
        self._collections = db["document_collections"]
        self._config = config
        self._indexes: dict[str, CollectionIndex] = {}

    @staticmethod
    def _key(tenant: str, document_id: str) -> str:
        return f"{tenant}/{document_id}"

    @staticmethod
    def _scope(tenant: str, collection: str) -> str:
        return f"{tenant}/{collection}"

    async def current(self, tenant: str, document_id: str) -> DocumentRecord | None:
        found = await self._documents.find_one({"_id": self._key(tenant, document_id)})
        return None if found is None else _record(found)

    async def collection(self, tenant: str, collection: str) -> CollectionIndex:
        """The collection's live documents, as of now (loaded again if another process
        changed them). Hold the collection's registration lock while using it."""
        scope = self._scope(tenant, collection)
        index = self._indexes.get(scope)
        counted = await self._collections.find_one({"_id": scope})
        last = int(counted["last_change"]) if counted else 0
        if index is not None and index.changes >= last:
            return index
        # The last number first, then the documents: a change's document is written before
        # its number is taken, so the index holds at least every change up to `changes`.
        changes = await self._last_change(scope, max(last, 0 if index is None else index.changes))
        index = CollectionIndex(changes, self._config)
        scoped = {"tenant": tenant, "collection": collection}
        live = [found async for found in self._documents.find({**scoped, "deleted": False})]
        wanted = {(found["document_id"], found["version"]) for found in live}
        shapes = {
            (found["document_id"], found["version"]): (found["signature"], found["bands"])
            async for found in self._signatures.find(scoped)
            if (found["document_id"], found["version"]) in wanted
        }
        for found in live:
            # records written before signatures had their own collection carry them
            inline = (found.get("signature", []), found.get("bands", []))
            signature, bands = shapes.get((found["document_id"], found["version"]), inline)
            index.put(_record(found), signature, bands)
        self._indexes[scope] = index
        return index

    async def _taken(self, scope: str, number: int) -> bool:
        """Whether change `number` of the collection was written."""
        return await self._changes.find_one({"_id": f"{scope}#{number}"}) is not None

    async def _last_change(self, scope: str, known: int) -> int:
        """The highest change number taken, in O(log n) lookups: numbers are taken in
        order, so 1..n all exist and none above."""
        low, step = known, 1  # `low` exists (or is 0)
        while await self._taken(scope, low + step):
            low, step = low + step, step * 2
        high = low + step  # does not exist
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if await self._taken(scope, middle) else (low, middle)
        return low

    async def write_version(
        self, tenant: str, collection: str, document_id: str, version: int, new: DocumentVersion
    ) -> None:
        """Make `version` the live one (idempotent: a redelivery writes the same fields)."""
        await insert_new(  # written once per version: a redelivery finds it there
            self._signatures,
            [
                {
                    "_id": f"{self._key(tenant, document_id)}@{version}",
                    "tenant": tenant,
                    "collection": collection,
                    "document_id": document_id,
                    "version": version,
                    "signature": list(new.signature),
                    "bands": list(new.bands),
                }
            ],
        )
        fields = {
            "tenant": tenant,
            "collection": collection,
            "document_id": document_id,
            "source": new.source,
            "version": version,
            "content_sha256": new.content_sha256,
            "fingerprint": new.fingerprint,
            "request_event_id": new.request_event_id,
            "job_id": new.job_id,
            "deleted": False,
            "updated_at": datetime.now(UTC),
        }
        key = self._key(tenant, document_id)
        if await insert_new(self._documents, [{"_id": key, **fields}]):
            await self._documents.update_one({"_id": key}, {"$set": fields})
        await self._count_change(tenant, collection, _record(fields), new.signature, new.bands)

    async def write_deletion(self, record: DocumentRecord, version: int) -> None:
        """Record the empty version that removes the document from search."""
        fields = {
            "version": version,
            "deleted": True,
            "fingerprint": "",
            "updated_at": datetime.now(UTC),
        }
        await self._documents.update_one(
            {"_id": self._key(record.tenant, record.document_id)}, {"$set": fields}
        )
        deleted = replace(record, version=version, deleted=True)
        await self._count_change(record.tenant, record.collection, deleted, [], [])

    async def _count_change(
        self,
        tenant: str,
        collection: str,
        record: DocumentRecord,
        signature: Sequence[int],
        bands: Sequence[str],
    ) -> None:
        """Number this write; keep the loaded index if no other write came in between."""
        scope = self._scope(tenant, collection)
        index = self._indexes.get(scope) or await self.collection(tenant, collection)
        number = index.changes + 1
        while await insert_new(self._changes, [{"_id": f"{scope}#{number}"}]):
            number += 1  # another process took it: its write is not in this index
        await upsert(
            lambda: self._collections.update_one(
                {"_id": scope}, {"$max": {"last_change": number}}, upsert=True
            )
        )
        if number == index.changes + 1:
            index.changes = number
            index.put(record, signature, bands)
        else:
            del self._indexes[scope]  # loaded again, with both writes, before the next check


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
