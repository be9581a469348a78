"""Work done for a client stops when the client leaves: 499, with the work's cleanup run."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request
from starlette.types import Message

from llmops.llm.errors import ApiError
from llmops.llm.requests import unless_disconnected


class _Client:
    """The ASGI receive side of a request whose body was read: it can only disconnect."""

    def __init__(self) -> None:
        self.left = asyncio.Event()

    async def receive(self) -> Message:
        await self.left.wait()
        return {"type": "http.disconnect"}

    def request(self) -> Request:
        return Request({"type": "http", "method": "POST", "headers": []}, self.receive)


async def test_the_work_answers_when_the_client_stays() -> None:
    async def work() -> str:
        await asyncio.sleep(0.01)
        return "answer"

    assert await unless_disconnected(_Client().request(), work()) == "answer"


async def test_a_client_that_leaves_cancels_the_work_after_its_cleanup_and_gets_499() -> None:
    client = _Client()
    cleaned_up = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned_up.set()
        return "never"

    asyncio.get_running_loop().call_later(0.01, client.left.set)
    with pytest.raises(ApiError) as raised:
        await asyncio.wait_for(unless_disconnected(client.request(), work()), timeout=5)

    assert raised.value.status == 499
    assert raised.value.code == "client_closed_request"
    assert cleaned_up.is_set()
    # The task that ran it is not left cancelled: it goes on to answer the 499.
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_a_cancel_from_elsewhere_is_not_taken_for_a_disconnect() -> None:
    working = asyncio.Event()

    async def work() -> str:
        working.set()
        await asyncio.sleep(60)
        return "never"

    task = asyncio.ensure_future(unless_disconnected(_Client().request(), work()))
    await working.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_disconnect_after_the_answer_cancels_nothing() -> None:
    client = _Client()

    async def work() -> str:
        return "answer"

    assert await unless_disconnected(client.request(), work()) == "answer"
    client.left.set()
    # A wrong cancel of this task would land in this await: it lets the watcher's
    # callbacks run.
    await asyncio.sleep(0.01)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
