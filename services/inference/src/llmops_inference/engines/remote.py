"""An engine that forwards to any OpenAI-compatible server (`/v1/chat/completions`).

Streams when the caller streams (asking the upstream for usage in its last chunk),
otherwise makes one plain call. Upstream failures become `ApiError`s: a 4xx is relayed
with the upstream's message and code, a 5xx becomes 502, an unreachable upstream 502
and a timeout 504. Closing the stream closes the upstream connection, which is how an
OpenAI-compatible server (vLLM, this service) learns to stop generating.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx

from llmops.llm.chat import FinishReason, Usage
from llmops.llm.errors import ApiError
from llmops.llm.sse import sse_payloads
from llmops_inference.engines.base import ChatTurn, EngineLoad, GenerationRequest, TokenDelta

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "error": "error",
}


class RemoteEngine:
    """Generation by an upstream OpenAI-compatible server."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        http: httpx.AsyncClient,
        upstream_model: str | None = None,
        api_key: str | None = None,
        context_length: int | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 300.0,
    ) -> None:
        self._name = name
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._upstream_model = upstream_model or name
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._context_length = context_length
        # read: the longest silence allowed between two bytes (first token included)
        self._timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self._in_flight = 0

    @property
    def context_length(self) -> int | None:
        return self._context_length

    async def start(self) -> None:
        """Nothing to load: the upstream is checked by `health` and by each call."""

    async def close(self) -> None:
        """The HTTP client belongs to the service and is closed with it."""

    async def health(self) -> None:
        response = await self._http.get(
            f"{self._base_url}/models", headers=self._headers, timeout=self._timeout
        )
        response.raise_for_status()

    def load(self) -> EngineLoad:
        return EngineLoad(running=self._in_flight)

    async def count_prompt_tokens(self, messages: Sequence[ChatTurn]) -> int | None:
        return None  # the upstream's tokenizer is not here; it reports usage instead

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        self._in_flight += 1
        try:
            if request.stream:
                async with contextlib.aclosing(self._streamed(request)) as deltas:
                    async for delta in deltas:
                        yield delta
            else:
                yield await self._whole(request)
        finally:
            self._in_flight -= 1

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            **request.extra,
            "model": self._upstream_model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": request.stream,
        }
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    async def _whole(self, request: GenerationRequest) -> TokenDelta:
        try:
            response = await self._http.post(
                f"{self._base_url}/chat/completions",
                json=self._body(request),
                headers=self._headers,
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code != 200:
            raise self._refused(response.status_code, response.content, response.headers)
        try:
            payload = response.json()
            choice = payload["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._malformed(exc) from exc
        return TokenDelta(text, _finish(choice.get("finish_reason")), _usage(payload.get("usage")))

    async def _streamed(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        url = f"{self._base_url}/chat/completions"
        try:
            async with self._http.stream(
                "POST", url, json=self._body(request), headers=self._headers, timeout=self._timeout
            ) as response:
                if response.status_code != 200:
                    body = await response.aread()
                    raise self._refused(response.status_code, body, response.headers)
                yield TokenDelta()  # accepted
                async with contextlib.aclosing(self._deltas(response)) as deltas:
                    async for delta in deltas:
                        yield delta
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    async def _deltas(self, response: httpx.Response) -> AsyncGenerator[TokenDelta, None]:
        finish: FinishReason | None = None
        usage: Usage | None = None
        pieces = 0
        try:
            async for payload in sse_payloads(response.aiter_lines()):
                if "error" in payload:
                    message = _error_message(payload) or "the upstream failed mid-stream"
                    raise ApiError(502, message, code="upstream_error")
                if payload.get("usage"):
                    usage = _usage(payload["usage"])
                for choice in payload.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    finish = _finish(choice.get("finish_reason")) or finish
                    if text:
                        pieces += 1
                        yield TokenDelta(text)
        except (ValueError, AttributeError, TypeError) as exc:
            raise self._malformed(exc) from exc
        if finish is None:
            raise ApiError(
                502, f"{self._name}: the upstream stream ended early", code="upstream_error"
            )
        # Without reported usage, each content chunk is counted as one token.
        yield TokenDelta("", finish, usage or Usage.of(0, pieces))

    def _refused(self, status: int, body: bytes, headers: httpx.Headers) -> ApiError:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        message = _error_message(parsed) if isinstance(parsed, dict) else None
        detail = message or body[:300].decode(errors="replace") or "no details"
        if status == 429:
            retry = {"Retry-After": headers["retry-after"]} if "retry-after" in headers else None
            return ApiError(429, detail, code="upstream_rate_limited", headers=retry)
        if 400 <= status < 500:
            error = parsed.get("error") if isinstance(parsed, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            param = error.get("param") if isinstance(error, dict) else None
            return ApiError(
                status,
                detail,
                code=code if isinstance(code, str) else "upstream_rejected",
                param=param if isinstance(param, str) else None,
            )
        return ApiError(
            502, f"{self._name}: upstream answered {status}: {detail}", code="upstream_error"
        )

    def _unreachable(self, exc: httpx.HTTPError) -> ApiError:
        if isinstance(exc, httpx.TimeoutException):
            return ApiError(504, f"{self._name}: the upstream timed out", code="upstream_timeout")
        return ApiError(
            502, f"{self._name}: upstream unreachable: {exc!r}", code="upstream_unreachable"
        )

    def _malformed(self, exc: Exception) -> ApiError:
        return ApiError(
            502, f"{self._name}: malformed upstream answer: {exc!r}", code="upstream_error"
        )


def _finish(value: object) -> FinishReason | None:
    return _FINISH_REASONS.get(value) if isinstance(value, str) else None


def _usage(value: object) -> Usage:
    if not isinstance(value, dict):
        return Usage()
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    return Usage.of(
        prompt if isinstance(prompt, int) else 0, completion if isinstance(completion, int) else 0
    )


def _error_message(payload: dict[str, Any] | None) -> str | None:
    error = (payload or {}).get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return None
