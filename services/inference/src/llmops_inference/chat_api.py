"""OpenAI-compatible HTTP API: `/v1/chat/completions` (streamed or whole) and `/v1/models`.

Bodies are read here rather than by FastAPI so that every way a body can be wrong gets
its own clear 4xx: over `max_request_bytes` 413, not UTF-8 or not JSON 400, not a valid
request 400 naming the field. A stream is opened before the response starts, so an
unknown model (404), a prompt over the context (400) or a model still loading (503)
is a status code, not an event. Once streaming, a client that goes away cancels the
generation (the engine frees its slot); a whole-answer request is cancelled the same
way when its client disconnects while waiting.
"""

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from llmops.llm.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    completion_id,
)
from llmops.llm.errors import ApiError, error_body
from llmops.llm.models import ModelCard, ModelList
from llmops.llm.requests import read_json, unless_disconnected
from llmops.llm.sse import DONE, sse_event
from llmops.service import LateBound
from llmops.telemetry import get_logger
from llmops_inference.engine_pool import EnginePool
from llmops_inference.engines.base import ChatTurn, GenerationRequest, TokenDelta, collect
from llmops_inference.model_registry import ModelRecord

T = TypeVar("T")

_log = get_logger(__name__)

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def build_chat_router(
    pools: LateBound[EnginePool], *, max_request_bytes: int, load_wait_s: float
) -> APIRouter:
    router = APIRouter(tags=["openai"])
    # Resolved by FastAPI from this closure: no `from __future__ import annotations` here.
    Pool = Annotated[EnginePool, Depends(pools.get)]

    @router.post(
        "/v1/chat/completions",
        summary="Create a chat completion (OpenAI-compatible; `stream` for server-sent events)",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {}}}},
        response_model=None,
    )
    async def chat_completions(request: Request, pool: Pool) -> JSONResponse | StreamingResponse:
        chat = await read_json(request, ChatCompletionRequest, max_request_bytes)
        if chat.prompt is not None or chat.rag is not None:
            msg = "`prompt` and `rag` are gateway extensions; call the gateway for them"
            raise ApiError(
                400, msg, code="unsupported_parameter", param="prompt" if chat.prompt else "rag"
            )
        generation = generation_request(chat)
        deltas = await pool.open_stream(chat.model, generation, wait_s=load_wait_s)
        if not chat.stream:
            text, finish, usage = await unless_disconnected(request, collect(deltas))
            completion = ChatCompletion(
                id=completion_id(),
                model=chat.model,
                choices=[Choice(message=AssistantMessage(content=text), finish_reason=finish)],
                usage=usage,
            )
            return JSONResponse(completion.model_dump(mode="json", exclude_none=True))
        try:
            first = await anext(deltas)  # an error here ended the stream: it is a status code
        except StopAsyncIteration:
            raise ApiError(502, "the engine ended without answering", code="engine_error") from None
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        events = _events(deltas, first, model=chat.model, include_usage=include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers=_SSE_HEADERS)

    @router.get("/v1/models", summary="Models this service serves (every stage but retired)")
    async def list_models(pool: Pool) -> ModelList:
        records = await pool.registry.all()
        return ModelList(data=[model_card(record) for record in records if record.servable])

    @router.get("/v1/models/{name:path}", summary="One servable model")
    async def get_model(name: str, pool: Pool) -> ModelCard:
        return model_card(await pool.record(name))

    return router


def generation_request(chat: ChatCompletionRequest) -> GenerationRequest:
    return GenerationRequest(
        messages=[ChatTurn(message.role, message.text()) for message in chat.messages],
        max_tokens=chat.token_limit(),
        temperature=1.0 if chat.temperature is None else chat.temperature,
        top_p=1.0 if chat.top_p is None else chat.top_p,
        stop=chat.stop_sequences(),
        seed=chat.seed,
        stream=chat.stream,
        extra=dict(chat.model_extra or {}),
    )


def model_card(record: ModelRecord) -> ModelCard:
    return ModelCard(
        id=record.name,
        created=int(record.created_at.timestamp()),
        stage=record.stage.value,
        engine=record.engine.value,
        context_length=record.context_length,
        pricing={
            "prompt_per_1k_tokens": record.price_per_1k_prompt_tokens,
            "completion_per_1k_tokens": record.price_per_1k_completion_tokens,
        },
    )


async def _events(
    deltas: AsyncGenerator[TokenDelta, None], first: TokenDelta, *, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    """The SSE body: a role chunk, content chunks, a finish chunk, usage if asked, [DONE].

    A failure after the stream started is sent as an OpenAI error event, then the stream
    ends (clients raise it); a client that disconnects cancels this generator, and with
    it the engine's stream.
    """
    identifier, created = completion_id(), int(time.time())

    def chunk(delta: Delta, finish: FinishReason | None = None) -> bytes:
        choices = [ChunkChoice(delta=delta, finish_reason=finish)]
        return sse_event(
            ChatCompletionChunk(id=identifier, created=created, model=model, choices=choices)
        )

    async with aclosing(deltas):
        yield chunk(Delta(role="assistant", content=""))
        try:
            delta: TokenDelta | None = first
            while delta is not None:
                if delta.text:
                    yield chunk(Delta(content=delta.text))
                if delta.finish_reason is not None:
                    yield chunk(Delta(), delta.finish_reason)
                    if include_usage and delta.usage is not None:
                        usage = ChatCompletionChunk(
                            id=identifier,
                            created=created,
                            model=model,
                            choices=[],
                            usage=delta.usage,
                        )
                        yield sse_event(usage)
                    break
                delta = await anext(deltas, None)
        except ApiError as exc:
            yield sse_event(exc.body())
            return
        except Exception as exc:  # the status line is sent: the error can only be an event
            _log.exception("stream failed", model=model)
            yield sse_event(
                error_body(500, f"generation failed: {exc!r}"[:300], code="engine_error")
            )
            return
    yield DONE  # once the engine's stream is closed and accounted for
