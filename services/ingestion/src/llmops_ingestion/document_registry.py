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

Versions are written in groups (`stage` each into the index, so the next document of
the group is checked against it, then `write_staged`): the group's signatures and
documents in one insert each, and one change number for all of them.

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

__all__ = ["DocumentRecord", "DocumentRegistry", "DocumentVersion", "StagedVersion"]


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


@dataclass(frozen=True)
class StagedVersion:
    """A version put in a collection's index, to be written with its group."""

    fields: MongoDocument
    signature: Sequence[int]
    bands: Sequence[str]

    @property
    def document_id(self) -> str:
        return str(self.fields["document_id"])

    @property
    def number(self) -> int:
        return int(self.fields["version"])


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
        index = CollectionIndex(tenant, collection, changes, self._config)
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

    def stage(
        self,
        index: CollectionIndex,
        document_id: str,
        version: int,
        new: DocumentVersion,
    ) -> StagedVersion:
        """Put `version` in the loaded `index` ahead of writing it (`write_staged`), so the
        documents checked after it in the same group see it."""
        fields = {
            "tenant": index.tenant,
            "collection": index.collection,
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
        index.put(_record(fields), new.signature, new.bands)
        return StagedVersion(fields, new.signature, new.bands)

    async def write_staged(self, index: CollectionIndex, staged: Sequence[StagedVersion]) -> None:
        """Make the staged versions live (idempotent: a redelivery writes the same fields).

        Signatures are written once per version (a redelivery finds them there); a
        document's record is inserted, or updated where it exists. If a write fails, the
        index is loaded again before the next check, as staged versions may be missing.
        """
        if not staged:
            return
        scope = self._scope(index.tenant, index.collection)
        try:
            await insert_new(
                self._signatures,
                [
                    {
                        "_id": f"{self._key(index.tenant, version.document_id)}@{version.number}",
                        "tenant": index.tenant,
                        "collection": index.collection,
                        "document_id": version.document_id,
                        "version": version.number,
                        "signature": list(version.signature),
                        "bands": list(version.bands),
                    }
                    for version in staged
                ],
            )
            records = {self._key(index.tenant, version.document_id): version for version in staged}
            existing = await insert_new(
                self._documents,
                [{"_id": key, **version.fields} for key, version in records.items()],
            )
            for key in existing:
                await self._documents.update_one({"_id": key}, {"$set": records[key].fields})
            await self._count_change(index)
        except BaseException:
            self._indexes.pop(scope, None)
            raise

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
        index = await self.collection(record.tenant, record.collection)
        index.put(replace(record, version=version, deleted=True), [], [])
        await self._count_change(index)

    async def _count_change(self, index: CollectionIndex) -> None:
        """Number the write just made, whose documents `index` holds already; keep the
        index if no other write came in between, else load it again before the next check."""
        scope = self._scope(index.tenant, index.collection)
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
        elif self._indexes.get(scope) is index:
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
