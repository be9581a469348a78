"""Deterministic ids: a redelivered event or a re-run job names the same things again."""

from __future__ import annotations

import re
from uuid import UUID, uuid5

_NAMESPACE = UUID("6f1c1f0e-5d0b-4c3e-9a57-1f2e3d4c5b6a")
COLLECTION_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""Collection names: lowercase letters, digits, `_` and `-`, at most 63 characters."""


def document_id_for(collection: str, source: str) -> str:
    """The document id of `source` in `collection` when the client gives none."""
    return str(uuid5(_NAMESPACE, f"document\x00{collection}\x00{source}"))


def chunk_id_for(tenant: str, document_id: str, version: int, ordinal: int) -> str:
    """A chunk's id (also its vector point id): stable across redeliveries of its batch."""
    return str(uuid5(_NAMESPACE, f"chunk\x00{tenant}\x00{document_id}\x00{version}\x00{ordinal}"))


def indexed_event_id(tenant: str, document_id: str, version: int) -> str:
    """The id of `docs.indexed` for one document version, so a republished one is a duplicate."""
    return str(uuid5(_NAMESPACE, f"indexed\x00{tenant}\x00{document_id}\x00{version}"))


def vector_collection_name(collection: str, embedding_model: str) -> str:
    """One vector collection per (collection, embedding model): vectors of two models never mix."""
    model = re.sub(r"[^a-z0-9]+", "-", embedding_model.lower()).strip("-")
    return f"{collection}__{model}"
