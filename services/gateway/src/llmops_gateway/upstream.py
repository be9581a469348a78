"""Calls to OpenAI-compatible backends, with failures sorted into retryable or not.

A retryable failure (connection refused, timeout, 5xx, 429 from the upstream) makes the
gateway try the next backend or fallback model; any other 4xx is the client's to fix and
is relayed as is. Streams are opened first and read afterwards, so a backend that fails
before its first event can still be retried; after that, the stream is the client's.

The hot path runs on aiohttp: per call it costs a fraction of httpx's CPU (the chat
path's largest cost in profiles, ADR 10). Each call is a client span, and its
`traceparent` goes upstream, so a chat request stays one trace through inference.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import aiohttp
from fastapi import Request
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmops.llm.errors import ApiError
from llmops.llm.requests import unless_disconnected
from llmops.llm.sse import sse_payloads
from llmops.telemetry import get_logger
from llmops_gateway.routing import Backend

_log = get_logger(__name__)
T = TypeVar("T")


class Upstreams:
    """The connection pool and tracer for backend calls; opened in the gateway's lifespan."""

    def __init__(self, tracer: trace.Tracer, *, max_connections: int = 1000) -> None:
        self._tracer = tracer
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=60)
        # No session-wide timeout: each call sets its route's.
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            msg = "Upstreams.start() was not called: the gateway is not started"
            raise RuntimeError(msg)
        return self._session

    @contextmanager
    def span(self, backend: Backend, headers: dict[str, str]) -> Iterator[trace.Span]:
        """A client span for a call to `backend`, its context injected into `headers`.

        Not made current: a stream's span is opened in one task and ended in another.
        """
        span = self._tracer.start_span(f"POST {backend.model}", kind=SpanKind.CLIENT)
        span.set_attribute("server.address", backend.url)
        span.set_attribute("gen_ai.request.model", backend.model)
        inject(headers, context=trace.set_span_in_context(span))
        try:
            yield span
        finally:
            span.end()


class UpstreamError(Exception):
    """A backend call failed; `retryable` says whether another backend may succeed."""

    def __init__(self, backend: Backend, message: str, *, status: int, retryable: bool) -> None:
        super().__init__(message)
        self.backend = backend
        self.status = status
        self.retryable = retryable
        self.body: dict[str, Any] | None = None

    @property
    def code(self) -> str:
        if self.status == 504:
            return "upstream_timeout"
        return "upstream_unavailable" if self.retryable else "upstream_rejected"

    def to_api_error(self) -> ApiError:
        """What the client sees: an upstream 4xx relayed with its message, else 502/504."""
        if not self.retryable and self.body is not None:
            error = self.body.get("error")
            if isinstance(error, dict):
                return ApiError(
                    self.status,
                    str(error.get("message", self)),
                    code=error.get("code") if isinstance(error.get("code"), str) else None,
                    param=error.get("param") if isinstance(error.get("param"), str) else None,
                )
        return ApiError(self.status, str(self), code=self.code)


async def first_success(
    backends: Iterable[Backend],
    call: Callable[[Backend], Awaitable[T]],
    request: Request,
) -> tuple[Backend, T]:
    """Call the backends in order until one answers; a retryable failure moves on, any
    other is the client's (relayed), and a client that leaves cancels the call (499)."""
    failures: list[str] = []
    for backend in backends:
        backend.outstanding += 1
        try:
            result = await unless_disconnected(request, call(backend))
        except UpstreamError as exc:
            if not exc.retryable:
                raise exc.to_api_error() from exc
            failures.append(str(exc))
            _log.warning(
                "backend failed, trying the next",
                backend=backend.served_model,
                error=str(exc)[:200],
            )
            continue
        finally:
            backend.outstanding -= 1
        return backend, result
    raise ApiError(
        502,
        "every backend for this model failed: " + " | ".join(failures)[:600],
        code="upstream_unavailable",
    )


def _headers(backend: Backend) -> dict[str, str]:
    return {"Authorization": f"Bearer {backend.api_key}"} if backend.api_key else {}


def _failure(backend: Backend, status: int, body: bytes) -> UpstreamError:
    retryable = status >= 500 or status in (408, 429)
    error = UpstreamError(
        backend,
        f"{backend.served_model} answered {status}: " + body[:300].decode(errors="replace"),
        status=502 if retryable else status,
        retryable=retryable,
    )
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    error.body = parsed if isinstance(parsed, dict) else None
    return error


def _unreachable(backend: Backend, exc: BaseException) -> UpstreamError:
    if isinstance(exc, asyncio.TimeoutError):
        return UpstreamError(
            backend, f"{backend.served_model} timed out", status=504, retryable=True
        )
    return UpstreamError(
        backend, f"{backend.served_model} is unreachable: {exc!r}"[:300], status=502, retryable=True
    )


async def complete(
    upstreams: Upstreams,
    backend: Backend,
    body: dict[str, Any],
    path: str = "/chat/completions",
) -> dict[str, Any]:
    """A non-streamed answer from `backend` (a completion by default), within its timeout."""
    headers = _headers(backend)
    with upstreams.span(backend, headers) as span:
        try:
            async with upstreams.session.post(
                f"{backend.url}{path}",
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=backend.route.timeout_s),
            ) as response:
                content = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise _unreachable(backend, exc) from exc
        span.set_attribute("http.response.status_code", status)
        if status != 200:
            span.set_status(Status(StatusCode.ERROR))
            raise _failure(backend, status, content)
    try:
        payload: dict[str, Any] = json.loads(content)
    except ValueError as exc:
        raise UpstreamError(
            backend, f"{backend.served_model} sent invalid JSON", status=502, retryable=True
        ) from exc
    return payload


@asynccontextmanager
async def open_stream(
    upstreams: Upstreams, backend: Backend, body: dict[str, Any]
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Open a streamed completion; yields an iterator of its event payloads.

    Leaving the block closes the upstream connection: that is how a client that went
    away cancels the work upstream.
    """
    headers = _headers(backend)
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=backend.route.timeout_s,
        sock_read=backend.route.first_token_timeout_s,
    )
    with upstreams.span(backend, headers) as span:
        try:
            response = await upstreams.session.post(
                f"{backend.url}/chat/completions", json=body, headers=headers, timeout=timeout
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise _unreachable(backend, exc) from exc
        span.set_attribute("http.response.status_code", response.status)
        try:
            if response.status != 200:
                span.set_status(Status(StatusCode.ERROR))
                raise _failure(backend, response.status, await response.read())
            yield _payloads(backend, response)
        finally:
            # `close`, not `release`: an unfinished stream must drop its connection, so the
            # backend sees the client leave and stops generating.
            response.close()


async def _payloads(
    backend: Backend, response: aiohttp.ClientResponse
) -> AsyncIterator[dict[str, Any]]:
    try:
        async for payload in sse_payloads(_lines(response)):
            yield payload
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _unreachable(backend, exc) from exc
    except ValueError as exc:
        raise UpstreamError(
            backend, f"{backend.served_model} sent an invalid event", status=502, retryable=False
        ) from exc


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    async for line in response.content:
        yield line.decode()
