"""vLLM as a child process: started, health-checked, routed to, stopped.

vLLM pins torch, transformers and fastapi versions the rest of the platform cannot share,
so it is never imported here: it runs as `vllm serve` from its own environment (a venv,
an image), configured by `INFERENCE_VLLM_COMMAND`, the same shape as a KServe vLLM
runtime. This engine starts it on a free loopback port, polls `/health` until it is
ready (or fails with its exit code and the end of its log), then forwards requests to
its OpenAI-compatible API through the remote engine. `close` stops the whole process
group: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from llmops.llm.errors import ApiError
from llmops.telemetry import get_logger
from llmops_inference.engines.base import (
    ChatTurn,
    EngineLoad,
    EngineStartError,
    GenerationRequest,
    TokenDelta,
)
from llmops_inference.engines.remote import RemoteEngine

_log = get_logger(__name__)


@dataclass(frozen=True)
class VllmOptions:
    command: Sequence[str] = ("vllm",)
    start_timeout_s: float = 900.0
    stop_timeout_s: float = 30.0
    log_dir: Path = Path(".llmops/logs")
    extra_args: Sequence[str] = ()  # e.g. ("--gpu-memory-utilization", "0.85")


class VllmEngine:
    """A `vllm serve` process of our own, served through its OpenAI-compatible API."""

    def __init__(
        self,
        name: str,
        source: str,
        *,
        http: httpx.AsyncClient,
        revision: str | None = None,
        context_length: int | None = None,
        options: VllmOptions = VllmOptions(),
        read_timeout_s: float = 300.0,
    ) -> None:
        self._name = name
        self._source = source
        self._http = http
        self._revision = revision
        self._context_length = context_length
        self._options = options
        self._read_timeout_s = read_timeout_s
        self._process: asyncio.subprocess.Process | None = None
        self._log_path = options.log_dir / f"vllm-{_safe(name)}.log"
        self._base_url = ""
        self._remote: RemoteEngine | None = None

    @property
    def context_length(self) -> int | None:
        return self._context_length

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` of the running server."""
        return self._base_url

    def command(self, port: int) -> list[str]:
        args = [*self._options.command, "serve", self._source]
        args += ["--host", "127.0.0.1", "--port", str(port), "--served-model-name", self._name]
        if self._revision:
            args += ["--revision", self._revision]
        if self._context_length:
            args += ["--max-model-len", str(self._context_length)]
        return [*args, *self._options.extra_args]

    async def start(self) -> None:
        port = _free_port()
        self._base_url = f"http://127.0.0.1:{port}"
        self._options.log_dir.mkdir(parents=True, exist_ok=True)
        command = self.command(port)
        _log.info(
            "starting vllm", model=self._name, command=" ".join(command), log=str(self._log_path)
        )
        with self._log_path.open("ab") as log:
            try:
                self._process = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped as a whole
                )
            except OSError as exc:
                msg = (
                    f"cannot run {command[0]!r} for model {self._name!r} ({exc}); set "
                    "INFERENCE_VLLM_COMMAND to the vllm executable of its own environment"
                )
                raise EngineStartError(msg) from exc
        try:
            await self._wait_until_ready()
        except BaseException:
            await self._stop_process()
            raise
        self._remote = RemoteEngine(
            self._name,
            f"{self._base_url}/v1",
            http=self._http,
            context_length=self._context_length,
            read_timeout_s=self._read_timeout_s,
        )
        _log.info(
            "vllm ready", model=self._name, url=self._base_url, context_length=self._context_length
        )

    async def _wait_until_ready(self) -> None:
        """Poll `/health` until 200; fail fast when the process exits, or at the deadline."""
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self._options.start_timeout_s
        while True:
            if process.returncode is not None:
                msg = (
                    f"vllm for model {self._name!r} exited with code {process.returncode} before "
                    f"it was ready; its log ({self._log_path}) ends with:\n{self._log_tail()}"
                )
                raise EngineStartError(msg)
            with contextlib.suppress(httpx.HTTPError):
                response = await self._http.get(f"{self._base_url}/health", timeout=2.0)
                if response.status_code == 200:
                    break
            if time.monotonic() > deadline:
                msg = (
                    f"vllm for model {self._name!r} was not ready after "
                    f"{self._options.start_timeout_s:.0f}s; see {self._log_path}"
                )
                raise EngineStartError(msg)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), timeout=0.25)  # wakes at once on exit
        if self._context_length is None:
            self._context_length = await self._served_context_length()

    async def _served_context_length(self) -> int | None:
        """vLLM reports the context it serves as `max_model_len` in `/v1/models`."""
        try:
            response = await self._http.get(f"{self._base_url}/v1/models", timeout=5.0)
            for card in response.json().get("data", []):
                if card.get("id") == self._name and isinstance(card.get("max_model_len"), int):
                    return int(card["max_model_len"])
        except (httpx.HTTPError, ValueError, AttributeError):
            _log.warning("vllm did not report its context length", model=self._name)
        return None

    async def close(self) -> None:
        await self._stop_process()
        self._remote = None

    async def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=self._options.stop_timeout_s)
        except TimeoutError:
            _log.warning("vllm did not stop on SIGTERM; killing it", model=self._name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        _log.info("vllm stopped", model=self._name, returncode=process.returncode)

    @property
    def exited(self) -> bool:
        """The server process died on its own (the pool then starts a new one)."""
        return self._process is None or self._process.returncode is not None

    async def health(self) -> None:
        if self.exited:
            msg = f"vllm for model {self._name!r} is not running"
            raise RuntimeError(msg)
        response = await self._http.get(f"{self._base_url}/health", timeout=2.0)
        response.raise_for_status()

    def load(self) -> EngineLoad:
        return self._remote.load() if self._remote else EngineLoad()

    async def count_prompt_tokens(self, messages: Sequence[ChatTurn]) -> int | None:
        return None

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        remote = self._remote
        if remote is None or self.exited:
            raise ApiError(
                503, f"vllm for model {self._name!r} is not running", code="engine_stopped"
            )
        async with contextlib.aclosing(remote.stream(request)) as deltas:
            async for delta in deltas:
                yield delta

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
