"""The live documents of one collection, in memory: exact and near-duplicate lookups.

Checking a new document against a collection asks for its fingerprint's holders and for
the holders of each of its LSH bands (32 by default), then compares signatures. As
database lookups that was ~35 round trips per document, which made FerretDB (~5 ms of
its CPU per lookup, as stock 1.24 scanned on `_id`; ADR 15) the pipeline's bottleneck.
Here the bands and signatures of the live documents sit in two NumPy matrices (one row
per document: 256 + 512 bytes at the default shape), so a lookup is one vectorised
comparison over the collection (a few ms at 100,000 documents); `DocumentRegistry` loads
the index from the stored documents and their signatures, and loads it again when
another process changed them. Rows of replaced versions stay, unused, until then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from llmops_ingestion.dedup import MinHashConfig

_INITIAL_ROWS = 256
_Cell = TypeVar("_Cell", bound=np.generic)


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
class _Live:
    record: DocumentRecord
    row: int | None  # its row in the matrices; None when written under another MinHash shape


class CollectionIndex:
    """Fingerprints, LSH bands and MinHash signatures of a collection's live documents.

    `changes` is the collection's change count this index reflects (see
    `DocumentRegistry`); use it from one task at a time (the ingestion worker registers
    one group of a collection's documents at a time).
    """

    def __init__(self, tenant: str, collection: str, changes: int, config: MinHashConfig) -> None:
        self.tenant = tenant
        self.collection = collection
        self.changes = changes
        self._config = config
        self._live: dict[str, _Live] = {}
        self._by_fingerprint: dict[str, set[str]] = {}
        self._bands: npt.NDArray[np.uint64] = np.zeros((_INITIAL_ROWS, config.bands), np.uint64)
        self._signatures: npt.NDArray[np.uint32] = np.zeros(
            (_INITIAL_ROWS, config.num_perm), np.uint32
        )
        self._alive: npt.NDArray[np.bool_] = np.zeros(_INITIAL_ROWS, np.bool_)
        self._owners: list[str] = []

    def __len__(self) -> int:
        return len(self._live)

    def put(self, record: DocumentRecord, signature: Sequence[int], bands: Sequence[str]) -> None:
        """Make `record` the document's live version (a deleted one just leaves the index)."""
        self.remove(record.document_id)
        if record.deleted:
            return
        self._by_fingerprint.setdefault(record.fingerprint, set()).add(record.document_id)
        row = None
        if len(signature) == self._config.num_perm and len(bands) == self._config.bands:
            row = self._append(record.document_id, signature, bands)
        self._live[record.document_id] = _Live(record, row)

    def remove(self, document_id: str) -> None:
        live = self._live.pop(document_id, None)
        if live is None:
            return
        holders = self._by_fingerprint.get(live.record.fingerprint)
        if holders is not None:
            holders.discard(document_id)
            if not holders:
                del self._by_fingerprint[live.record.fingerprint]
        if live.row is not None:
            self._alive[live.row] = False

    def exact_duplicate(self, fingerprint: str, *, excluding: str) -> DocumentRecord | None:
        """A live document with the same normalised text (the first by id)."""
        holders = sorted(self._by_fingerprint.get(fingerprint, ()))
        for document_id in holders:
            if document_id != excluding:
                return self._live[document_id].record
        return None

    def near_duplicate(
        self,
        signature: Sequence[int],
        bands: Sequence[str],
        *,
        excluding: str,
        threshold: float,
    ) -> tuple[DocumentRecord, float] | None:
        """The most similar live document sharing an LSH band, if at least `threshold`
        similar (estimated Jaccard); ties go to the first by id."""
        if len(signature) != self._config.num_perm or len(bands) != self._config.bands:
            return None  # made under another MinHash shape: nothing here is comparable
        rows = len(self._owners)
        shares_band = (self._bands[:rows] == _band_digests(bands)).any(axis=1)
        candidates = np.flatnonzero(shares_band & self._alive[:rows])
        if not len(candidates):
            return None
        query = np.asarray(signature, dtype=np.uint32)
        similarities = (self._signatures[candidates] == query).mean(axis=1)
        best: tuple[DocumentRecord, float] | None = None
        for row, similarity in zip(candidates.tolist(), similarities.tolist(), strict=True):
            owner = self._owners[row]
            if owner == excluding or similarity < threshold:
                continue
            if (
                best is None
                or similarity > best[1]
                or (similarity == best[1] and owner < best[0].document_id)
            ):
                best = (self._live[owner].record, float(similarity))
        return best

    def _append(self, document_id: str, signature: Sequence[int], bands: Sequence[str]) -> int:
        row = len(self._owners)
        if row == len(self._alive):
            self._bands = _grown(self._bands)
            self._signatures = _grown(self._signatures)
            self._alive = _grown(self._alive)
        self._bands[row] = _band_digests(bands)
        self._signatures[row] = np.asarray(signature, dtype=np.uint32)
        self._alive[row] = True
        self._owners.append(document_id)
        return row


def _band_digests(bands: Sequence[str]) -> npt.NDArray[np.uint64]:
    """`MinHasher.band_keys` as numbers: band i's digest in column i."""
    return np.array([int(key.partition(":")[2], 16) for key in bands], dtype=np.uint64)


def _grown(matrix: npt.NDArray[_Cell]) -> npt.NDArray[_Cell]:
    grown = np.zeros((2 * len(matrix), *matrix.shape[1:]), dtype=matrix.dtype)
    grown[: len(matrix)] = matrix
    return grown
