"""Content-addressed blob store: the claim check for documents too big for an event.

The gateway stores an upload once under its SHA-256 and puts the `file://` URI in
`docs.ingest.requested`; ingestion reads it back. Writing the same bytes twice is a
no-op, so a retried upload never duplicates storage. Any deployment where gateway and
ingestion share a volume (compose, a Kubernetes ReadWriteMany claim) uses it as is.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlparse

_CHUNK = 1 << 20


class BlobNotFoundError(LookupError):
    """The URI names no stored blob (deleted, or written to another store)."""


class BlobTooLargeError(ValueError):
    """The content passed the store's size limit; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than the limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredBlob:
    """Where the bytes went and what they were."""

    uri: str
    sha256: str
    size_bytes: int


class BlobStore:
    """Blobs as files named by their SHA-256 under `root` (two-level fan-out)."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def _path(self, sha256: str) -> Path:
        return self._root / sha256[:2] / sha256

    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredBlob:
        """Stream bytes into the store, hashing on the way; refuse past `max_bytes`.

        The content lands in a temporary file first and is renamed into place, so a
        reader never sees a partial blob and concurrent writers of the same bytes agree.
        """
        # File work runs in threads: the store may be a network volume shared by services.
        handle = await asyncio.to_thread(self._temporary_file)
        digest = hashlib.sha256()
        size = 0
        try:
            with handle:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLargeError(max_bytes)
                    digest.update(chunk)
                    await asyncio.to_thread(handle.write, chunk)
            sha256 = digest.hexdigest()
            target = self._path(sha256)
            await asyncio.to_thread(_move_into_place, handle.name, target)
        except BaseException:
            os.unlink(handle.name)
            raise
        return StoredBlob(uri=target.as_uri(), sha256=sha256, size_bytes=size)

    def _temporary_file(self) -> IO[bytes]:
        self._root.mkdir(parents=True, exist_ok=True)
        return tempfile.NamedTemporaryFile(dir=self._root, prefix=".upload-", delete=False)

    async def put(self, content: bytes) -> StoredBlob:
        """Store `content` (no size limit beyond its own length)."""

        async def one() -> AsyncIterator[bytes]:
            yield content

        return await self.put_stream(one(), max_bytes=len(content))

    def read(self, uri: str) -> bytes:
        """The bytes behind `uri`; only URIs inside this store are honoured."""
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise BlobNotFoundError(f"{uri}: only file:// blobs are supported by this store")
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(self._root):
            raise BlobNotFoundError(f"{uri} is outside the blob store {self._root}")
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"{uri} does not exist (removed, or another store?)") from exc


def _move_into_place(temporary: str, target: Path) -> None:
    target.parent.mkdir(exist_ok=True)
    os.replace(temporary, target)
