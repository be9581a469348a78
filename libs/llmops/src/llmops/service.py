"""One place that wires a service: settings, telemetry, storage, the bus and its HTTP app.

A service declares what it consumes and which routes it serves; `create_service_app`
builds the FastAPI app whose lifespan starts and stops every resource, and which
serves `/healthz` (ready only when Kafka and MongoDB answer) and `/metrics`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace import TracerProvider
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from llmops.bus import EventBus
from llmops.settings import ServiceSettings
from llmops.storage import MongoDocument, mongo_client
from llmops.telemetry import ServiceMetrics, configure_tracing, get_logger, traced_http_client
from llmops.telemetry.http_server import HttpServerTelemetry

_log = get_logger(__name__)


@dataclass
class ServiceContext:
    """The running service's dependencies, handed to routes and handlers.

    `http` is the client for calls to other services: its requests carry the trace.
    """

    settings: ServiceSettings
    bus: EventBus
    mongo: AsyncMongoClient[MongoDocument]
    metrics: ServiceMetrics
    tracer_provider: TracerProvider
    http: httpx.AsyncClient
    resources: AsyncExitStack = field(default_factory=AsyncExitStack)
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    informational_checks: set[str] = field(default_factory=set)
    """Checks reported by `/healthz` that do not make the service unready (e.g. `kafka`
    for a service that spools its events through an outage)."""
    after_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run once the bus has started (workers that publish from their first moment); push
    their cleanup on `resources`."""

    @property
    def db(self) -> AsyncDatabase[MongoDocument]:
        return self.mongo[self.settings.mongodb_database]


T = TypeVar("T")


class LateBound(Generic[T]):
    """A dependency the lifespan creates (in `wire`) and routes use: routes are built first.

    Reading it before the lifespan set it answers 503, never a 500.
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._value: T | None = None

    def set(self, value: T) -> None:
        self._value = value

    def get(self) -> T:
        if self._value is None:
            raise HTTPException(503, f"{self._what} is not ready yet; retry shortly")
        return self._value


Wiring = Callable[[ServiceContext], Awaitable[None] | None]
HealthCheck = Callable[[], Awaitable[None]]
"""Raises when a dependency of the service is not usable; `/healthz` reports the error."""


def create_service_app(
    settings: ServiceSettings,
    *,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    wire: Wiring | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Build a service's FastAPI app.

    `wire(context)` runs once, before the broker starts: it subscribes handlers and
    opens service-specific resources (push their cleanup on `context.resources`).
    """
    tracer_provider = tracer_provider or configure_tracing(settings.service_name)
    metrics = ServiceMetrics(settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = mongo_client(settings)
        bus = EventBus(settings, tracer_provider=tracer_provider, metrics=metrics)
        http = traced_http_client(tracer_provider, timeout=30.0)
        context = ServiceContext(settings, bus, mongo, metrics, tracer_provider, http)
        app.state.context = context
        async with context.resources:
            context.resources.push_async_callback(mongo.close)
            context.resources.push_async_callback(http.aclose)
            if wire is not None:
                maybe = wire(context)
                if maybe is not None:
                    await maybe
            await bus.start()
            context.resources.push_async_callback(bus.stop)
            for start in context.after_start:
                await start()
            _log.info("service started", port=settings.port, group=settings.consumer_group)
            yield
        tracer_provider.shutdown()

    title = f"llmops {settings.service_name}"
    app = FastAPI(title=title, description=description, lifespan=lifespan)
    app.add_middleware(
        HttpServerTelemetry,
        tracer_provider=tracer_provider,
        metrics=metrics,
        untraced_paths=("/healthz", "/metrics"),
    )
    for router in routers:
        app.include_router(router)

    @app.get(
        "/healthz", tags=["operations"], summary="Readiness: Kafka, MongoDB and more reachable"
    )
    async def healthz(request: Request) -> JSONResponse:
        context = cast(ServiceContext, request.app.state.context)
        checks = await _health_checks(context)
        ok = all(
            state == "ok"
            for name, state in checks.items()
            if name not in context.informational_checks
        )
        body: dict[str, Any] = {
            "status": "ok" if ok else "unavailable",
            "service": settings.service_name,
            "checks": checks,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def prometheus_metrics() -> Any:
        return metrics.render()

    return app


async def _health_checks(context: ServiceContext) -> dict[str, str]:
    async def kafka() -> None:
        if not await context.bus.ping(timeout=2.0):
            msg = "broker not reachable"
            raise ConnectionError(msg)

    async def mongodb() -> None:
        await context.mongo.admin.command("ping")

    checks: dict[str, HealthCheck] = {"kafka": kafka, "mongodb": mongodb, **context.health_checks}

    async def run(check: HealthCheck) -> str:
        try:
            await asyncio.wait_for(check(), timeout=3.0)
        except Exception as exc:
            return f"error: {exc!r}"[:200]
        return "ok"

    states = await asyncio.gather(*(run(check) for check in checks.values()))
    return dict(zip(checks, states, strict=True))


def service_context(request: Request) -> ServiceContext:
    """FastAPI dependency: the running service's context."""
    return cast(ServiceContext, request.app.state.context)


def subscribe_skeleton(topics: Sequence[str]) -> Wiring:
    """Join the service's consumer group on `topics`, logging each validated event.

    Services whose behaviour has not landed yet use this so that they already
    validate, dead-letter and commit what they consume; their issue replaces it.
    """

    async def log_received(event: Any) -> None:
        _log.debug("event received", event_type=event.type, event_id=event.id)

    def wire(context: ServiceContext) -> None:
        from llmops.events.catalog import CONTRACTS, Topic

        for topic in topics:
            context.bus.subscribe(CONTRACTS[Topic(topic)], log_received)

    return wire


def serve(
    settings_type: type[ServiceSettings],
    create_app: Callable[[Any], FastAPI],
) -> None:
    """Entry point of every service: read settings, configure logs, run the HTTP server."""
    import uvicorn

    from llmops.settings import load_settings
    from llmops.telemetry import configure_logging

    settings = load_settings(settings_type)
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
