"""Client factories for MongoDB and Qdrant; services open and close them in lifespans."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError
from qdrant_client import AsyncQdrantClient

from llmops.settings import ServiceSettings

MongoDocument = dict[str, Any]
_T = TypeVar("_T")


def mongo_client(settings: ServiceSettings) -> AsyncMongoClient[MongoDocument]:
    """A client for MONGODB_URL (FerretDB locally, MongoDB in production)."""
    return AsyncMongoClient(
        settings.mongodb_url.get_secret_value(),
        appname=settings.service_name,
        tz_aware=True,
        serverSelectionTimeoutMS=5_000,
    )


def qdrant_client(settings: ServiceSettings) -> AsyncQdrantClient:
    """The Qdrant server at QDRANT_URL, or embedded Qdrant on disk at QDRANT_PATH.

    Embedded mode lets one process open a path, so only the indexer holds it.
    """
    if settings.qdrant_url:
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return AsyncQdrantClient(url=settings.qdrant_url, api_key=api_key)
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    return AsyncQdrantClient(path=str(settings.qdrant_path))


async def insert_once(
    collection: AsyncCollection[MongoDocument], document_id: str, document: MongoDocument
) -> bool:
    """Insert under a deterministic `_id`; a redelivered event finds it there and writes nothing.

    Returns True when this call wrote the document. This is how a consumer makes an
    at-least-once delivery produce exactly one write.
    """
    try:
        await collection.insert_one({**document, "_id": document_id})
    except DuplicateKeyError:
        return False
    return True


async def upsert(write: Callable[[], Awaitable[_T]]) -> _T:
    """Run an upsert by `_id`, once more if a concurrent upsert inserted that `_id` first.

    Two upserts of a missing record both try to insert it, and the slower one fails with
    a duplicate key error (FerretDB always; MongoDB when it does not retry on the server).
    The record exists by then, so the second attempt updates it like any other.
    """
    try:
        return await write()
    except DuplicateKeyError:
        return await write()


_DUPLICATE_KEY = 11000


async def insert_new(
    collection: AsyncCollection[MongoDocument], documents: list[MongoDocument]
) -> set[Any]:
    """Insert the documents whose `_id` is not taken yet; returns the `_id`s that were.

    Inserting first and updating only what exists is the cheap way to write records that
    are usually new: one write instead of a lookup and a write. (Stock FerretDB 1.24 on
    SQLite also scanned the collection for every update by `_id`; the dev stack's build
    uses its `_id` index, ADR 15.)
    """
    if not documents:
        return set()
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != _DUPLICATE_KEY for error in errors):
            raise
        return {documents[error["index"]]["_id"] for error in errors}
    return set()


UPDATES_PER_COMMAND = 64
"""Updates sent in one bulk command. FerretDB 1.24 keeps every update's cursor (an SQLite
connection) open until the command ends, so a command of ~100 updates waits forever for
a connection; fewer per command is safe, and still one round trip for many."""


async def bulk_update(
    collection: AsyncCollection[MongoDocument], updates: Sequence[UpdateOne]
) -> None:
    """Apply independent updates in as few commands as the server safely takes."""
    for start in range(0, len(updates), UPDATES_PER_COMMAND):
        await collection.bulk_write(
            list(updates[start : start + UPDATES_PER_COMMAND]), ordered=False
        )
