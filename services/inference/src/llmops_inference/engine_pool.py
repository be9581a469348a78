"""Registered models to running engines: looked up, loaded on first use, unloaded when retired.

The registry is the truth; lookups are cached for `registry_cache_s` so the hot path does
not read MongoDB on every token of every request, and a stage change made on another
replica is seen within that time. An engine loads once, however many requests ask for
it at the same moment; an HTTP request waits at most `load_wait_s` for it (then 503 with
`Retry-After`), the Kafka worker waits for as long as loading takes. A vLLM engine whose
process died is started again on the next request.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from collections.abc import AsyncGenerator, Callable

import httpx

from llmops.llm.errors import ApiError
from llmops.telemetry import get_logger
from llmops_inference.engines.base import (
    Engine,
    EngineLoad,
    EngineStartError,
    GenerationRequest,
    TokenDelta,
)
from llmops_inference.engines.remote import RemoteEngine
from llmops_inference.engines.transformers_engine import TransformersEngine, TransformersOptions
from llmops_inference.engines.vllm import VllmEngine, VllmOptions
from llmops_inference.inference_metrics import InferenceMetrics
from llmops_inference.model_registry import EngineKind, ModelRecord, ModelRegistry, model_not_found
from llmops_inference.settings import InferenceSettings

_log = get_logger(__name__)

EngineBuilder = Callable[[ModelRecord], Engine]


def engine_builder(settings: InferenceSettings, http: httpx.AsyncClient) -> EngineBuilder:
    """How each kind of registered model becomes an engine, with the service's defaults."""

    def build(record: ModelRecord) -> Engine:
        options = record.options
        if record.engine is EngineKind.TRANSFORMERS:
            max_wait_ms = (
                options.max_wait_ms if options.max_wait_ms is not None else settings.max_wait_ms
            )
            return TransformersEngine(
                record.name,
                record.source,
                revision=record.revision,
                context_length=record.context_length,
                options=TransformersOptions(
                    device=options.device or settings.device,
                    dtype=options.dtype or settings.dtype,
                    max_batch_size=options.max_batch_size or settings.max_batch_size,
                    max_wait_s=max_wait_ms / 1000,
                    torch_threads=settings.torch_threads,
                ),
            )
        if record.engine is EngineKind.VLLM:
            return VllmEngine(
                record.name,
                record.source,
                http=http,
                revision=record.revision,
                context_length=record.context_length,
                options=VllmOptions(
                    command=tuple(shlex.split(settings.vllm_command)),
                    start_timeout_s=settings.vllm_start_timeout_s,
                    log_dir=settings.vllm_log_dir,
                    extra_args=tuple(options.vllm_args),
                ),
                read_timeout_s=settings.upstream_read_timeout_s,
            )
        api_key = None
        if record.api_key_env:
            api_key = os.environ.get(record.api_key_env)
            if not api_key:
                msg = f"model {record.name!r} needs its upstream key in ${record.api_key_env}"
                raise EngineStartError(msg)
        return RemoteEngine(
            record.name,
            record.source,
            http=http,
            upstream_model=record.upstream_model,
            api_key=api_key,
            context_length=record.context_length,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            read_timeout_s=settings.upstream_read_timeout_s,
        )

    return build


class EnginePool:
    """The engines of this replica, by model name."""

    def __init__(
        self,
        registry: ModelRegistry,
        build: EngineBuilder,
        *,
        metrics_factory: Callable[[Callable[[], dict[str, EngineLoad]]], InferenceMetrics],
        registry_cache_s: float = 5.0,
    ) -> None:
        self._registry = registry
        self._build = build
        self._cache_s = registry_cache_s
        self._records: dict[str, tuple[ModelRecord | None, float]] = {}
        self._engines: dict[str, Engine] = {}
        self._loading: dict[str, asyncio.Task[Engine]] = {}
        self.metrics = metrics_factory(self.loads)

    # -- lookups --------------------------------------------------------------------------

    async def record(self, name: str) -> ModelRecord:
        """The servable model called `name`; 404 when unknown or retired."""
        cached = self._records.get(name)
        if cached is not None and time.monotonic() - cached[1] < self._cache_s:
            record = cached[0]
        else:
            record = await self._registry.find(name)
            self._records[name] = (record, time.monotonic())
        if record is None or not record.servable:
            if name in self._engines:
                await self.unload(name)
            raise model_not_found(name)
        return record

    @property
    def registry(self) -> ModelRegistry:
        return self._registry

    def forget(self, name: str) -> None:
        """Drop the cached lookup (this replica changed the model's stage)."""
        self._records.pop(name, None)

    def loads(self) -> dict[str, EngineLoad]:
        return {name: engine.load() for name, engine in self._engines.items()}

    # -- engines --------------------------------------------------------------------------

    async def engine(self, record: ModelRecord, *, wait_s: float | None) -> Engine:
        """The running engine of `record`, loading it if needed (once for all callers)."""
        engine = self._engines.get(record.name)
        if engine is not None and not (isinstance(engine, VllmEngine) and engine.exited):
            return engine
        if engine is not None:
            _log.warning("vllm process is gone; starting it again", model=record.name)
            await self.unload(record.name)
        try:
            return await asyncio.wait_for(
                asyncio.shield(self._loading_task(record)), timeout=wait_s
            )
        except TimeoutError:
            msg = f"model {record.name!r} is loading; retry shortly"
            raise ApiError(503, msg, code="model_loading", headers={"Retry-After": "5"}) from None
        except EngineStartError as exc:
            raise ApiError(503, str(exc), code="model_unavailable") from exc

    def _loading_task(self, record: ModelRecord) -> asyncio.Task[Engine]:
        """The one task loading `record`'s engine, started if none is running."""
        task = self._loading.get(record.name)
        if task is None:
            task = asyncio.create_task(self._load(record), name=f"load-{record.name}")
            task.add_done_callback(_log_load_failure)
            self._loading[record.name] = task
        return task

    async def _load(self, record: ModelRecord) -> Engine:
        try:
            engine = self._build(record)
            started = time.perf_counter()
            await engine.start()
            _log.info(
                "engine ready",
                model=record.name,
                engine=record.engine.value,
                seconds=round(time.perf_counter() - started, 2),
            )
            self._engines[record.name] = engine
            return engine
        finally:
            self._loading.pop(record.name, None)

    async def preload(self, names: list[str]) -> None:
        """Start loading `names` in the background; failures are logged, retried on use."""
        for name in names:
            try:
                record = await self.record(name)
            except ApiError:
                _log.error("cannot preload an unknown or retired model", model=name)
                continue
            if name not in self._engines:
                self._loading_task(record)

    async def open_stream(
        self, name: str, request: GenerationRequest, *, wait_s: float | None
    ) -> AsyncGenerator[TokenDelta, None]:
        """Resolve the model and its engine (404/503 raised here), then its metered stream."""
        record = await self.record(name)
        engine = await self.engine(record, wait_s=wait_s)
        return self.metrics.metered(record.name, engine.stream(request))

    async def unload(self, name: str) -> None:
        engine = self._engines.pop(name, None)
        if engine is not None:
            _log.info("unloading model", model=name)
            await engine.close()

    async def close(self) -> None:
        loading = list(self._loading.values())
        for task in loading:
            task.cancel()
        await asyncio.gather(*loading, return_exceptions=True)
        for name in list(self._engines):
            await self.unload(name)

    async def health(self) -> None:
        """Raise when a loaded engine cannot serve."""
        problems = []
        for name, engine in list(self._engines.items()):
            try:
                await engine.health()
            except Exception as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise RuntimeError("; ".join(problems))


def _log_load_failure(task: asyncio.Task[Engine]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        _log.error("model failed to load", task=task.get_name(), error=str(error)[:2000])
