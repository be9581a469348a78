"""Helpers for tests that run against the real broker and database: poll, never sleep."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord

if TYPE_CHECKING:
    from llmops.settings import ServiceSettings

T = TypeVar("T")
S = TypeVar("S", bound="ServiceSettings")


class SettingsFactory(Protocol):
    """Builds settings of any service type bound to a test's own topics and database."""

    @overload
    def __call__(self, **values: Any) -> ServiceSettings: ...

    @overload
    def __call__(self, settings_type: type[S], /, **values: Any) -> S: ...


@overload
async def wait_until(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


async def wait_until(
    probe: Callable[[], Any],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll `probe` (sync or async) until it returns a truthy value, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        outcome = probe()
        last = await outcome if inspect.isawaitable(outcome) else outcome
        if last:
            return last
        await asyncio.sleep(interval)
    msg = f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})"
    raise TimeoutError(msg)


async def read_topic(
    bootstrap_servers: str, topic: str, *, count: int, timeout: float = 30.0
) -> list[ConsumerRecord[Any, Any]]:
    """Read `count` records from the start of `topic` with a throwaway consumer group."""
    return await read_topic_until(
        bootstrap_servers,
        topic,
        lambda records: len(records) >= count,
        timeout=timeout,
        what=f"{count} records",
    )


async def read_topic_until(
    bootstrap_servers: str,
    topic: str,
    done: Callable[[list[ConsumerRecord[Any, Any]]], bool],
    *,
    timeout: float = 30.0,
    what: str = "what was waited for",
) -> list[ConsumerRecord[Any, Any]]:
    """Read `topic` from the start until `done(records so far)` holds; returns them all.

    For "nothing more than this": wait for the last expected record, and every record the
    partition holds before it is in the answer (one partition keeps its order).
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while not done(records):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"{topic}: {len(records)} records read in {timeout:.0f}s, not {what}"
                raise TimeoutError(msg)
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000))
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


def headers_of(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    """A record's Kafka headers as text."""
    return {key: value.decode() for key, value in record.headers}


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_answering(
    url: str, process: subprocess.Popen[bytes], *, timeout: float = 180.0
) -> None:
    """Poll `url` until it answers 200; fail at once, with the exit code, if `process` exits."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                msg = f"{url}: the process exited with {process.returncode}"
                raise RuntimeError(msg)
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url, timeout=5)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    msg = f"{url} did not answer 200 within {timeout:.0f}s"
    raise TimeoutError(msg)


def bearer(secret: str) -> dict[str, str]:
    """The header that authenticates a call to the gateway with an API key."""
    return {"Authorization": f"Bearer {secret}"}


async def create_api_key(
    gateway: httpx.AsyncClient, admin_key: str, *, name: str = "test", **spec: Any
) -> str:
    """Create an API key through the gateway's admin API (`tenant`, `role`, limits as
    keywords); returns its secret."""
    body = {"name": name, **spec}
    response = await gateway.post("/v1/admin/keys", json=body, headers=bearer(admin_key))
    if response.status_code != 201:
        msg = f"could not create API key {body}: {response.status_code} {response.text}"
        raise AssertionError(msg)
    secret: str = response.json()["secret"]
    return secret


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app over real HTTP on a free loopback port; yields its base URL.

    The app's lifespan runs as in production; readiness is polled, not slept.
    """
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), timeout=60, what="the server")
        if task.done():
            task.result()  # raises the start-up error
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
