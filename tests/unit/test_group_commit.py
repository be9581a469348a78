"""GroupCommit: entries queued during a write go together in the next, one writer each."""

from __future__ import annotations

import asyncio

import pytest

from llmops.group_commit import Committed, GroupCommit


class Recorder:
    """A group write that records its groups; each write waits until its gate opens."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, list[int]]] = []
        self.gates: list[asyncio.Event] = []
        self.failures: dict[int, Exception] = {}
        """Writes (by their number) that fail, and with what."""
        self.started = asyncio.Event()

    async def write(self, key: str, entries: list[int]) -> list[str]:
        number = len(self.groups)
        self.groups.append((key, list(entries)))
        gate = asyncio.Event()
        self.gates.append(gate)
        self.started.set()
        await gate.wait()
        if number in self.failures:
            raise self.failures[number]
        return [f"{key}:{entry}" for entry in entries]

    async def writing(self, count: int) -> None:
        """Until `count` writes have started."""
        while len(self.groups) < count:
            self.started.clear()
            await self.started.wait()


Tasks = list["asyncio.Task[Committed[str]]"]


def submit_all(groups: GroupCommit[int, str], key: str, entries: list[int]) -> Tasks:
    return [asyncio.create_task(groups.submit(key, entry)) for entry in entries]


async def queued_behind_a_write(
    groups: GroupCommit[int, str], recorder: Recorder, entries: list[int]
) -> tuple[Tasks, Tasks]:
    """Entry 0 of "job" written alone and held open, `entries` queued behind it; returns
    both once the write of 0 is let go and the next write has started."""
    first = submit_all(groups, "job", [0])
    await recorder.writing(1)
    queued = submit_all(groups, "job", entries)
    await asyncio.sleep(0)
    recorder.gates[0].set()
    await recorder.writing(2)
    return first, queued


async def test_entries_submitted_during_a_write_are_written_together_by_one_of_them() -> None:
    recorder = Recorder()
    groups = GroupCommit(recorder.write)
    first, rest = await queued_behind_a_write(groups, recorder, [1, 2, 3])
    recorder.gates[1].set()

    committed = await asyncio.gather(*first, *rest)

    assert recorder.groups == [("job", [0]), ("job", [1, 2, 3])]
    assert [c.value for c in committed] == ["job:0", "job:1", "job:2", "job:3"]
    assert [c.wrote for c in committed] == [True, True, False, False]  # one writer per group
    assert len(groups) == 0


async def test_other_keys_are_written_alongside() -> None:
    recorder = Recorder()
    groups = GroupCommit(recorder.write)
    tasks = submit_all(groups, "a", [1]) + submit_all(groups, "b", [1])

    await recorder.writing(2)  # both under way at once
    for gate in recorder.gates:
        gate.set()

    assert [c.value for c in await asyncio.gather(*tasks)] == ["a:1", "b:1"]


async def test_a_failed_write_fails_every_entry_of_its_group_and_not_the_next() -> None:
    recorder = Recorder()
    recorder.failures[1] = RuntimeError("disk full")
    groups = GroupCommit(recorder.write)
    first, failing = await queued_behind_a_write(groups, recorder, [1, 2])
    after = submit_all(groups, "job", [3])
    await asyncio.sleep(0)
    recorder.gates[1].set()
    await recorder.writing(3)
    recorder.gates[2].set()

    assert (await first[0]).value == "job:0"
    outcomes = await asyncio.gather(*failing, return_exceptions=True)
    assert [str(outcome) for outcome in outcomes] == ["disk full", "disk full"]
    assert (await after[0]).value == "job:3"


async def test_when_the_writer_is_cancelled_another_member_writes_the_group() -> None:
    recorder = Recorder()
    groups = GroupCommit(recorder.write)
    first, members = await queued_behind_a_write(groups, recorder, [1, 2])
    # member 1 is writing the group [1, 2]
    members[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await members[0]
    await recorder.writing(3)  # member 2 writes it instead
    recorder.gates[2].set()
    committed = await members[1]

    assert recorder.groups == [("job", [0]), ("job", [1, 2]), ("job", [1, 2])]
    assert committed.value == "job:2"
    assert committed.wrote
    assert (await first[0]).value == "job:0"


async def test_a_write_must_return_one_result_per_entry() -> None:
    async def short(key: str, entries: list[int]) -> list[str]:
        return []

    with pytest.raises(RuntimeError, match="returned 0 results for 1 entries"):
        await GroupCommit(short).submit("job", 1)
