"""`send_batch` hands a whole batch to the producer in one turn of a busy event loop.

Under load every yield waits for a full turn of the loop; an outbox that yielded every
few events fell behind a saturated gateway without bound. The producer here is a stand-in
that acknowledges at once, isolating the hand-off from Kafka.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llmops.bus.delivery import send_batch
from llmops.bus.spool import SpooledEvent


class _AcknowledgingProducer:
    """Records each send with the loop turn it happened in; every send is acknowledged."""

    def __init__(self, turns: list[int]) -> None:
        self.turns = turns
        self.sent_in_turn: list[int] = []

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[Any]:
        self.sent_in_turn.append(self.turns[0])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_a_batch_is_handed_off_within_one_turn_of_a_busy_loop() -> None:
    turns = [0]
    stop = asyncio.Event()

    async def busy() -> None:  # other work on the loop: one step per turn
        while not stop.is_set():
            turns[0] += 1
            await asyncio.sleep(0)

    others = [asyncio.create_task(busy()) for _ in range(8)]
    await asyncio.sleep(0)
    producer = _AcknowledgingProducer(turns)
    events = [SpooledEvent(f"e{n}", "topic", b"k", b"v") for n in range(500)]
    try:
        outcome = await send_batch(producer, events, timeout_s=5)
    finally:
        stop.set()
        await asyncio.gather(*others)

    assert outcome.acked == list(range(500))
    assert outcome.unsettled == []
    assert len(producer.sent_in_turn) == 500
    assert len(set(producer.sent_in_turn)) == 1, "the hand-off yielded to other work"
