"""KeyedLocks: one holder per key, other keys free, nothing kept after use."""

from __future__ import annotations

import asyncio

from llmops.keyed_locks import KeyedLocks


async def test_holders_of_one_key_take_turns_and_other_keys_do_not_wait() -> None:
    locks = KeyedLocks()
    events: list[str] = []
    inside: set[str] = set()

    async def hold(key: str, name: str) -> None:
        async with locks.hold(key):
            assert key not in inside, f"two holders of {key}"
            inside.add(key)
            events.append(f"{name} in")
            await asyncio.sleep(0.01)
            events.append(f"{name} out")
            inside.discard(key)

    await asyncio.gather(hold("job-1", "a"), hold("job-1", "b"), hold("job-2", "c"))

    assert events.index("a out") < events.index("b in")  # same key: one after the other
    assert events.index("c in") < events.index("a out")  # other key: alongside
    assert len(locks) == 0


async def test_a_failing_holder_releases_the_key() -> None:
    locks = KeyedLocks()
    try:
        async with locks.hold("job-1"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    async with asyncio.timeout(1):
        async with locks.hold("job-1"):
            assert len(locks) == 1
    assert len(locks) == 0
