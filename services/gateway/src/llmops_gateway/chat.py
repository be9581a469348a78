"""`POST /v1/chat/completions`: the chat hot path.

caller admitted by its quotas → messages built (managed prompt, retrieved context) →
answer caches (exact, then semantic) → backends tried in routing order until one answers
(fallback on 5xx, timeout or connection failure) → answer relayed (whole, or streamed as
server-sent events) → one `llm.completions` event handed off without waiting, quotas
charged with the real token count, the answer cached.

A client that goes away mid-stream cancels the upstream call (its connection is closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio
import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmops.events.catalog import CONTRACTS, CacheResult, RedactionPolicy, Topic
from llmops.events.envelope import Envelope, new_event
from llmops.llm.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    Usage,
    completion_id,
)
from llmops.llm.errors import ApiError, error_body
from llmops.llm.sse import DONE, sse_event
from llmops.telemetry import get_logger
from llmops.telemetry.request_context import request_id_of, trace_id
from llmops_gateway import upstream
from llmops_gateway.answer_cache import CachedAnswer, CacheKey, ExactCache, SemanticCache, cache_key
from llmops_gateway.api_keys import Caller
from llmops_gateway.chat_context import ChatContext, citations
from llmops_gateway.completion_record import CompletionRecord, completion_event
from llmops_gateway.pricing import PriceBook
from llmops_gateway.quotas import Admission, QuotaGuard
from llmops_gateway.routing import Backend, Router

_log = get_logger(__name__)

CACHE_HEADER = "X-LLMOps-Cache"
T = TypeVar("T")


class EventSink(Protocol):
    def submit(self, event: Envelope[Any]) -> None:
        """Hand the event off for publishing; never blocks, never raises for Kafka."""


Embed = Callable[[str], Awaitable[np.ndarray]]


@dataclass
class AnswerCaches:
    exact: ExactCache | None
    semantic: SemanticCache | None
    embed: Embed | None


@dataclass
class _Call:
    """A call past the caches, on its way to a backend: what relaying and recording need."""

    request: Request
    body: ChatCompletionRequest
    record: CompletionRecord
    admission: Admission
    key: CacheKey
    vector: np.ndarray | None


class ChatCompletions:
    def __init__(
        self,
        *,
        router: Router,
        upstreams: upstream.Upstreams,
        context: ChatContext,
        caches: AnswerCaches,
        quotas: QuotaGuard,
        prices: PriceBook,
        events: EventSink,
        redaction: Callable[[str], RedactionPolicy],
    ) -> None:
        self._router = router
        self._upstreams = upstreams
        self._context = context
        self._caches = caches
        self._quotas = quotas
        self._prices = prices
        self._events = events
        self._redaction = redaction
        self._background: set[asyncio.Task[None]] = set()

    async def create(
        self, request: Request, body: ChatCompletionRequest, caller: Caller
    ) -> Response:
        caller.ensure_model(body.model)
        self._router.require(body.model)
        record = CompletionRecord(
            completion_id=completion_id(),
            request_id=request_id_of(request.scope) or "",
            api_key_id=caller.key_id,
            tenant=caller.tenant,
            requested_model=body.model,
            stream=body.stream,
            user=body.user,
            session_id=body.metadata.session_id if body.metadata else None,
            tags=list(body.metadata.tags) if body.metadata else [],
            trace_id=trace_id(),
        )
        admission: Admission | None = None
        try:
            admission = await self._quotas.admit(caller, _estimated_tokens(body))
            record.messages = await self._context.messages(body, record)
            key = cache_key(caller.tenant, body.model, body, record.messages)
            answer, vector = await self._cached(key, record)
            if answer is not None:
                return self._answer_from_cache(body, record, answer, admission)
            call = _Call(request, body, record, admission, key, vector)
            return await (self._stream(call) if body.stream else self._complete(call))
        except ApiError as exc:
            record.fail(exc.code or "error", exc.message)
            self._finish(record, admission, None, None, None)
            raise

    # -- caches ---------------------------------------------------------------------------

    async def _cached(
        self, key: CacheKey, record: CompletionRecord
    ) -> tuple[CachedAnswer | None, np.ndarray | None]:
        caches = self._caches
        if caches.exact is not None and (answer := caches.exact.get(key)) is not None:
            record.cache = CacheResult.EXACT
            return answer, None
        if caches.semantic is None or caches.embed is None or not key.question:
            return None, None
        try:
            vector = await caches.embed(key.question)
        except Exception as exc:  # the cache is an optimisation: answer without it
            _log.warning("semantic cache skipped: embedding failed", error=repr(exc)[:200])
            return None, None
        found = caches.semantic.get(key, vector)
        if found is None:
            return None, vector
        record.cache = CacheResult.SEMANTIC
        return found[0], vector

    def _remember(
        self, key: CacheKey | None, vector: np.ndarray | None, record: CompletionRecord
    ) -> None:
        if key is None or record.error is not None or record.output is None:
            return
        # Only whole answers are worth repeating (not a filtered or cut-off one).
        finish: FinishReason
        if record.finish_reason == "stop":
            finish = "stop"
        elif record.finish_reason == "length":
            finish = "length"
        else:
            return
        answer = CachedAnswer(
            content=record.output,
            finish_reason=finish,
            usage=record.usage,
            served_model=record.served_model,
        )
        if self._caches.exact is not None:
            self._caches.exact.put(key, answer)
        if self._caches.semantic is not None and vector is not None:
            self._caches.semantic.put(key, vector, answer)

    def _answer_from_cache(
        self,
        body: ChatCompletionRequest,
        record: CompletionRecord,
        answer: CachedAnswer,
        admission: Admission,
    ) -> Response:
        record.served_model = answer.served_model
        record.output = answer.content
        record.finish_reason = answer.finish_reason
        record.usage = answer.usage
        record.first_token()
        headers = {CACHE_HEADER: record.cache.value}
        extensions = self._extensions(record)
        if not body.stream:
            completion = ChatCompletion(
                id=record.completion_id,
                model=body.model,
                choices=[
                    Choice(
                        message=AssistantMessage(content=answer.content),
                        finish_reason=answer.finish_reason,
                    )
                ],
                usage=answer.usage,
                **extensions,
            )
            self._finish(record, admission, None, None, 0)
            return JSONResponse(completion.model_dump(mode="json"), headers=headers)

        def chunk(delta: Delta, finish: FinishReason | None = None) -> bytes:
            return sse_event(
                ChatCompletionChunk(
                    id=record.completion_id,
                    model=body.model,
                    choices=[ChunkChoice(delta=delta, finish_reason=finish)],
                    **extensions,
                )
            )

        events = [
            chunk(Delta(role="assistant", content="")),
            chunk(Delta(content=answer.content)),
            chunk(Delta(), answer.finish_reason),
        ]
        if body.stream_options is not None and body.stream_options.include_usage:
            events.append(
                sse_event(
                    ChatCompletionChunk(
                        id=record.completion_id, model=body.model, choices=[], usage=answer.usage
                    )
                )
            )
        events.append(DONE)
        self._finish(record, admission, None, None, 0)
        return StreamingResponse(_iterate(events), media_type="text/event-stream", headers=headers)

    # -- non-streamed ---------------------------------------------------------------------

    async def _complete(self, call: _Call) -> Response:
        request, body, record = call.request, call.body, call.record
        admission, key, vector = call.admission, call.key, call.vector

        async def ask(backend: Backend) -> dict[str, Any]:
            upstream_body = _upstream_body(body, backend, record.messages, stream=False)
            return await upstream.complete(self._upstreams, backend, upstream_body)

        backend, payload = await self._first_success(ask, request, record)
        message = (payload.get("choices") or [{}])[0].get("message") or {}
        record.output = message.get("content") or ""
        record.finish_reason = (payload.get("choices") or [{}])[0].get("finish_reason")
        record.usage = _usage(payload.get("usage"))
        payload["id"] = record.completion_id
        payload.update(self._extensions(record))
        price = await self._prices.price(backend)
        self._finish(record, admission, key, vector, price.cost(*_tokens(record.usage)))
        return JSONResponse(payload, headers={CACHE_HEADER: CacheResult.NONE.value})

    async def _first_success(
        self,
        call: Callable[[Backend], Coroutine[Any, Any, Any]],
        request: Request,
        record: CompletionRecord,
    ) -> tuple[Backend, Any]:
        """The first routed backend that answers, recorded as the one that served."""
        backends = self._router.attempts(record.requested_model)
        backend, result = await upstream.first_success(backends, call, request)
        record.served_model = backend.served_model
        return backend, result

    # -- streamed -------------------------------------------------------------------------

    async def _stream(self, call: _Call) -> Response:
        """Open the stream on the first backend whose first event arrives; then relay it."""
        request, body, record = call.request, call.body, call.record
        admission, key, vector = call.admission, call.key, call.vector
        resources = AsyncExitStack()

        async def open_on(backend: Backend) -> tuple[AsyncIterator[dict[str, Any]], dict[str, Any]]:
            upstream_body = _upstream_body(body, backend, record.messages, stream=True)
            events = await resources.enter_async_context(
                upstream.open_stream(self._upstreams, backend, upstream_body)
            )
            try:
                first = await anext(events)
            except StopAsyncIteration:
                raise upstream.UpstreamError(
                    backend,
                    f"{backend.served_model} ended the stream at once",
                    status=502,
                    retryable=True,
                ) from None
            except BaseException:
                await resources.aclose()
                raise
            return events, first

        try:
            backend, (events, first) = await self._first_success(open_on, request, record)
        except BaseException:
            await resources.aclose()
            raise
        price = await self._prices.price(backend)  # known before streaming: no await at the end
        backend.outstanding += 1
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        extensions = self._extensions(record)

        async def relay() -> AsyncIterator[bytes]:
            pieces: list[str] = []
            payload: dict[str, Any] | None = first
            try:
                while payload is not None:
                    choices = payload.get("choices") or []
                    if payload.get("usage"):
                        record.usage = _usage(payload["usage"])
                    for choice in choices:
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            record.first_token()
                            pieces.append(content)
                        if choice.get("finish_reason"):
                            record.finish_reason = choice["finish_reason"]
                    if choices or include_usage:
                        payload["id"] = record.completion_id
                        payload.update(extensions)
                        yield sse_event(payload)
                    payload = await anext(events, None)
                yield DONE
            except upstream.UpstreamError as exc:
                record.fail(exc.code, str(exc))
                yield sse_event(error_body(exc.status, str(exc), code=exc.code))
                yield DONE
            except BaseException:
                record.finish_reason = "cancelled"
                record.fail("client_disconnected", "the client closed the stream")
                raise
            finally:
                record.output = "".join(pieces)
                backend.outstanding -= 1
                with anyio.CancelScope(shield=True):
                    await resources.aclose()  # closes the upstream connection
                self._finish(record, admission, key, vector, price.cost(*_tokens(record.usage)))

        return StreamingResponse(
            relay(),
            media_type="text/event-stream",
            headers={CACHE_HEADER: CacheResult.NONE.value, "Cache-Control": "no-cache"},
        )

    # -- the end of every call ------------------------------------------------------------

    def _extensions(self, record: CompletionRecord) -> dict[str, Any]:
        extensions: dict[str, Any] = {
            "llmops": {
                "cache": record.cache.value,
                "served_model": record.served_model,
                "prompt": record.prompt.model_dump() if record.prompt else None,
            }
        }
        if record.collection is not None:
            extensions["citations"] = citations(record.hits, record.collection)
        return extensions

    def _finish(
        self,
        record: CompletionRecord,
        admission: Admission | None,
        key: CacheKey | None,
        vector: np.ndarray | None,
        cost: float | None,
    ) -> None:
        """Record the call: answer cached, then — after the response is on its way — the
        event built (redaction included) and handed off, and the tokens charged."""
        finished = time.perf_counter()
        record.cost_usd = cost or 0.0
        self._remember(key, vector, record)
        loop = asyncio.get_running_loop()
        loop.call_soon(self._record, record, finished)
        if admission is None:
            return
        tokens = 0 if record.cache is not CacheResult.NONE else record.usage.total_tokens
        if admission.settle_returning(tokens):
            return
        task = loop.create_task(_settle(admission, tokens))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _record(self, record: CompletionRecord, finished: float) -> None:
        try:
            event = completion_event(record, self._redaction(record.tenant), finished=finished)
            self._events.submit(
                new_event(
                    CONTRACTS[Topic.LLM_COMPLETIONS],
                    event,
                    source="gateway",
                    tenant=record.tenant,
                    subject=record.completion_id,
                )
            )
        except Exception:  # a bug here must not go unnoticed, nor break later calls
            _log.exception("could not record a completion", completion_id=record.completion_id)


async def _settle(admission: Admission, tokens: int) -> None:
    try:
        await admission.settle(tokens)
    except Exception as exc:
        _log.error("could not charge tokens to the key's quota", error=repr(exc)[:200])


async def _iterate(items: list[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def _upstream_body(
    body: ChatCompletionRequest, backend: Backend, messages: list[ChatMessage], *, stream: bool
) -> dict[str, Any]:
    upstream_body = body.upstream_body(backend.model)
    upstream_body["messages"] = [message.model_dump(exclude_none=True) for message in messages]
    if stream:
        # Always ask for usage: quotas, cost and the event need it; the client gets the
        # usage event only if it asked.
        upstream_body["stream_options"] = {"include_usage": True}
    return upstream_body


def _tokens(usage: Usage) -> tuple[int, int]:
    return usage.prompt_tokens, usage.completion_tokens


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    return Usage.of(prompt, completion)


def _estimated_tokens(body: ChatCompletionRequest) -> int:
    """A quota reservation before the call: ~4 characters per token plus the output limit."""
    characters = sum(len(message.text()) for message in body.messages)
    return characters // 4 + (body.token_limit() or 256)
