"""The OpenAI-compatible endpoints: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`.

Bodies are read with `llmops.llm.requests.read_json`: an oversized body is a 413, and
malformed JSON, invalid UTF-8 or a schema violation a 400 that names the field; every
error is an OpenAI error body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from llmops.llm.chat import ChatCompletionRequest
from llmops.llm.errors import ApiError
from llmops.llm.models import EmbeddingRequest, ModelCard, ModelList
from llmops.llm.requests import RawRequestRoute, read_json
from llmops.service import LateBound
from llmops_gateway import upstream
from llmops_gateway.api_keys import Caller
from llmops_gateway.chat import ChatCompletions
from llmops_gateway.routing import Backend, Router

Authenticate = Callable[[Request], Awaitable[Caller]]
M = TypeVar("M", bound=BaseModel)


def build_router(
    *,
    chat: LateBound[ChatCompletions],
    router: Router,
    authenticate: Authenticate,
    http: LateBound[httpx.AsyncClient],
    upstreams: LateBound[upstream.Upstreams],
    inference_url: str | None,
    indexer_url: str,
    embedding_model: str,
    max_request_bytes: int,
) -> APIRouter:
    # Chat and embeddings read and check their bodies themselves (read_json): FastAPI's
    # own request handling would only add to the gateway's overhead per call.
    api = APIRouter(prefix="/v1", tags=["openai"], route_class=RawRequestRoute)

    @api.post("/chat/completions", summary="Chat completion (OpenAI-compatible; stream or not)")
    async def chat_completions(request: Request) -> Response:
        caller = await authenticate(request)
        body = await read_json(request, ChatCompletionRequest, max_request_bytes)
        return await chat.get().create(request, body, caller)

    @api.post("/embeddings", summary="Embeddings (OpenAI-compatible)")
    async def embeddings(request: Request) -> Response:
        await authenticate(request)
        body = await read_json(request, EmbeddingRequest, max_request_bytes)
        if body.model in (embedding_model, embedding_model.rsplit("/", 1)[-1]):
            url = f"{indexer_url.rstrip('/')}/v1/embeddings"
            try:
                response = await http.get().post(url, json=body.model_dump(exclude_none=True))
            except httpx.HTTPError as exc:
                raise ApiError(503, f"embeddings are unavailable: {exc!r}"[:300]) from exc
            return Response(response.content, response.status_code, media_type="application/json")
        router.require(body.model)

        async def embed(backend: Backend) -> dict[str, Any]:
            payload = body.model_dump(exclude_none=True) | {"model": backend.model}
            return await upstream.complete(upstreams.get(), backend, payload, "/embeddings")

        _, answer = await upstream.first_success(router.attempts(body.model), embed, request)
        return JSONResponse(answer | {"model": body.model})

    async def models(request: Request) -> ModelList:
        caller = await authenticate(request)
        cards = {alias: ModelCard(id=alias, owned_by="llmops") for alias in router.aliases}
        if inference_url:
            for card in await _served_models(http.get(), inference_url):
                cards.setdefault(card.id, card)
        visible = [card for alias, card in sorted(cards.items()) if caller.may_use(alias)]
        return ModelList(data=visible)

    api.add_api_route(
        "/models",
        models,
        methods=["GET"],
        summary="Models this key may call (OpenAI-compatible)",
        route_class_override=APIRoute,
    )
    return api


async def _served_models(http: httpx.AsyncClient, inference_url: str) -> list[ModelCard]:
    """The inference service's models; none when it is not reachable (the table still is)."""
    try:
        response = await http.get(f"{inference_url.rstrip('/')}/models", timeout=5.0)
        data: list[dict[str, Any]] = response.json().get("data", [])
        return [ModelCard.model_validate(item) for item in data]
    except (httpx.HTTPError, ValueError, AttributeError, ValidationError):
        return []
