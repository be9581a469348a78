"""A background task that runs one step at a fixed interval until stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from llmops.telemetry.logs import get_logger

_log = get_logger(__name__)


class Periodic:
    """Runs `step` every `interval_s` seconds; a step that raises is logged and the next
    round tries again (the store or broker it needs may be back by then)."""

    def __init__(self, name: str, step: Callable[[], Awaitable[object]], interval_s: float) -> None:
        self.name = name
        self._step = step
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception as exc:
                _log.warning("periodic step failed", task=self.name, error=repr(exc))
            await asyncio.sleep(self.interval_s)


__all__ = ["Periodic"]
