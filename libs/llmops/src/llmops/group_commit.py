"""Group commit: writes of one key that come while one is under way go together next.

Handlers running at once often write to the same record (a job's tallies, a collection's
duplicate index) and must take turns. Rather than each taking its turn for one entry,
`GroupCommit` lets the entries that queue up during a write be written by one call, as
one group: on FerretDB each write is a read and a rewrite of a record, so ten writers
taking turns cost ten rewrites where a group costs one.

Each `submit` joins the key's open group and waits for the key's turn; the first of the
group to get it closes the group (entries submitted from then on open the next one) and
writes it, and every member gets its own result. If the write fails, every member of the
group gets the error; if the writing task is cancelled, the next member writes instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from llmops.keyed_locks import KeyedLocks

E = TypeVar("E")
R = TypeVar("R")


@dataclass(frozen=True)
class Committed(Generic[R]):
    """An entry's result, and whether this call wrote its group (one call per group)."""

    value: R
    wrote: bool


@dataclass
class _Group(Generic[E, R]):
    entries: list[E] = field(default_factory=list)
    closed: bool = False
    results: Sequence[R] | None = None
    error: Exception | None = None


class GroupCommit(Generic[E, R]):
    """`await groups.submit(key, entry)`: written with the entries of `key` that queued
    alongside it, by `write(key, entries)`, which returns one result per entry, in order."""

    def __init__(self, write: Callable[[str, list[E]], Awaitable[Sequence[R]]]) -> None:
        self._write = write
        self._turns = KeyedLocks()
        self._open: dict[str, _Group[E, R]] = {}

    async def submit(self, key: str, entry: E) -> Committed[R]:
        group = self._open.setdefault(key, _Group())
        position = len(group.entries)
        group.entries.append(entry)
        wrote = False
        async with self._turns.hold(key):
            if not group.closed:
                if self._open.get(key) is group:
                    del self._open[key]  # entries submitted from now on wait for the next
                group.closed = wrote = True
                await self._write_group(key, group)
        if group.error is not None:
            raise group.error
        if group.results is None:
            raise RuntimeError(f"the group commit of {key} ended without results")
        return Committed(group.results[position], wrote)

    async def _write_group(self, key: str, group: _Group[E, R]) -> None:
        try:
            results = await self._write(key, group.entries)
        except asyncio.CancelledError:
            group.closed = False  # the next member to get the turn writes the group
            raise
        except Exception as exc:
            group.error = exc
            return
        if len(results) != len(group.entries):
            group.error = RuntimeError(
                f"the group write of {key} returned {len(results)} results "
                f"for {len(group.entries)} entries"
            )
            return
        group.results = results

    def __len__(self) -> int:
        """Keys with a group open or being written."""
        return len(self._turns)
