"""One asyncio lock per key, for handlers that run concurrently but share a record.

The event bus runs events with different keys at once; when two of them update the same
record (a job, a collection's duplicate index) with a read-then-write, they take that
record's lock. Locks are forgotten once nobody holds or waits for them, so the keys seen
over a process's life do not accumulate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedLocks:
    """`async with locks.hold(key):` runs the block alone among holders of the same key."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    def __len__(self) -> int:
        """Keys with a holder or a waiter."""
        return len(self._locks)
