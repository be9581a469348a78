"""Calls to OpenAI-compatible backends, with failures sorted into retryable or not.

A retryable failure (connection refused, timeout, 5xx, 429 from the upstream) makes the
gateway try the next backend or fallback model; any other 4xx is the client's to fix and
is relayed as is. Streams are opened first and read afterwards, so a backend that fails
before its first event can still be retried; after that, the stream is the client's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from llmops.llm.errors import ApiError
from llmops.llm.sse import sse_payloads
from llmops_gateway.routing import Backend


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


def _headers(backend: Backend) -> dict[str, str]:
    return {"Authorization": f"Bearer {backend.api_key}"} if backend.api_key else {}


def _failure(backend: Backend, response: httpx.Response, body: bytes) -> UpstreamError:
    retryable = response.status_code >= 500 or response.status_code in (408, 429)
    status = 502 if retryable else response.status_code
    error = UpstreamError(
        backend,
        f"{backend.served_model} answered {response.status_code}: "
        + body[:300].decode(errors="replace"),
        status=status,
        retryable=retryable,
    )
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    error.body = parsed if isinstance(parsed, dict) else None
    return error


def _unreachable(backend: Backend, exc: Exception) -> UpstreamError:
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError):
        return UpstreamError(
            backend, f"{backend.served_model} timed out", status=504, retryable=True
        )
    return UpstreamError(
        backend, f"{backend.served_model} is unreachable: {exc!r}"[:300], status=502, retryable=True
    )


async def complete(
    http: httpx.AsyncClient,
    backend: Backend,
    body: dict[str, Any],
    path: str = "/chat/completions",
) -> dict[str, Any]:
    """A non-streamed answer from `backend` (a completion by default), within its timeout."""
    try:
        response = await http.post(
            f"{backend.url}{path}",
            json=body,
            headers=_headers(backend),
            timeout=backend.route.timeout_s,
        )
    except httpx.HTTPError as exc:
        raise _unreachable(backend, exc) from exc
    if response.status_code != 200:
        raise _failure(backend, response, response.content)
    try:
        payload: dict[str, Any] = response.json()
    except ValueError as exc:
        raise UpstreamError(
            backend, f"{backend.served_model} sent invalid JSON", status=502, retryable=True
        ) from exc
    return payload


@asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, backend: Backend, body: dict[str, Any]
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Open a streamed completion; yields an iterator of its event payloads.

    Leaving the block closes the upstream connection: that is how a client that went
    away cancels the work upstream.
    """
    timeout = httpx.Timeout(backend.route.timeout_s, read=backend.route.first_token_timeout_s)
    request = http.build_request(
        "POST",
        f"{backend.url}/chat/completions",
        json=body,
        headers=_headers(backend),
        timeout=timeout,
    )
    try:
        response = await http.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise _unreachable(backend, exc) from exc
    try:
        if response.status_code != 200:
            raise _failure(backend, response, await response.aread())
        yield _payloads(backend, response)
    finally:
        await response.aclose()


async def _payloads(backend: Backend, response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    try:
        async for payload in sse_payloads(response.aiter_lines()):
            yield payload
    except httpx.HTTPError as exc:
        raise _unreachable(backend, exc) from exc
    except ValueError as exc:
        raise UpstreamError(
            backend, f"{backend.served_model} sent an invalid event", status=502, retryable=False
        ) from exc
