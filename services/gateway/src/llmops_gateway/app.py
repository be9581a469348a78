"""Public OpenAI-compatible API: chat with RAG and managed prompts, keys, quotas, routing, caches.

The chat hot path is synchronous HTTP (gateway → indexer search → prompt cache →
inference), streamed back to the client; each call leaves one `llm.completions` event.
It also takes document uploads for ingestion, proxies retrieval, renders prompts from
its cache (kept fresh by `prompts.changed`) and takes users' feedback on answers
(`feedback.events`).
"""

from __future__ import annotations

import httpx
import numpy as np
from fastapi import FastAPI

from llmops.bus import EventOutbox
from llmops.events.catalog import CONTRACTS, Topic
from llmops.llm.errors import install_error_handlers
from llmops.service import LateBound, ServiceContext, create_service_app
from llmops.telemetry import get_logger
from llmops_gateway import (
    chat_routes,
    document_routes,
    feedback_routes,
    key_routes,
    prompt_routes,
)
from llmops_gateway.answer_cache import ExactCache, SemanticCache
from llmops_gateway.api_keys import Role
from llmops_gateway.auth import Access
from llmops_gateway.chat import AnswerCaches, ChatCompletions, EventSink
from llmops_gateway.chat_context import ChatContext
from llmops_gateway.pricing import PriceBook
from llmops_gateway.prompt_cache import PromptCache
from llmops_gateway.routing import Router
from llmops_gateway.settings import GatewaySettings
from llmops_gateway.upstream import Upstreams

CONSUMES: tuple[Topic, ...] = (Topic.PROMPTS_CHANGED,)

_log = get_logger(__name__)


def create_app(settings: GatewaySettings) -> FastAPI:
    prompts = PromptCache(settings.prompts_url)
    access = Access.from_settings(settings)
    router = Router(settings.model_routes, default_url=settings.inference_url)
    chat: LateBound[ChatCompletions] = LateBound("chat completions")
    http: LateBound[httpx.AsyncClient] = LateBound("the HTTP client")
    upstreams_ready: LateBound[Upstreams] = LateBound("the upstream connections")
    events: LateBound[EventSink] = LateBound("the event outbox")

    async def wire(context: ServiceContext) -> None:
        access.bind(context)
        # Completion and feedback events never wait for Kafka: queued, spooled to disk in
        # an outage.
        outbox = EventOutbox.from_settings(context.bus)
        await outbox.start()
        context.resources.push_async_callback(outbox.stop)
        events.set(outbox)
        context.informational_checks.add("kafka")  # an outage is spooled, not refused
        upstreams = Upstreams(context.tracer_provider.get_tracer("llmops.gateway.upstream"))
        await upstreams.start()
        context.resources.push_async_callback(upstreams.close)
        upstreams_ready.set(upstreams)
        prompts.bind(context.http)
        http.set(context.http)
        context.bus.subscribe(CONTRACTS[Topic.PROMPTS_CHANGED], prompts.on_prompt_changed)
        chat.set(
            ChatCompletions(
                router=router,
                upstreams=upstreams,
                context=ChatContext(
                    prompts=prompts, indexer_url=settings.indexer_url, http=context.http
                ),
                caches=_answer_caches(settings, context.http),
                quotas=access.quotas,
                prices=PriceBook(context.http),
                events=outbox,
                redaction=settings.redaction_for,
            )
        )

    app = create_service_app(
        settings,
        description=__doc__ or "",
        routers=[
            chat_routes.build_router(
                chat=chat,
                router=router,
                authenticate=access.caller(Role.APP, Role.ADMIN),
                http=http,
                upstreams=upstreams_ready,
                inference_url=settings.inference_url,
                indexer_url=settings.indexer_url,
                embedding_model=settings.embedding_model,
                max_request_bytes=settings.max_request_bytes,
            ),
            key_routes.build_router(access),
            prompt_routes.build_router(prompts, access),
            document_routes.build_router(settings, access),
            feedback_routes.build_router(access, events),
        ],
        wire=wire,
    )
    install_error_handlers(app)
    return app


def _answer_caches(settings: GatewaySettings, http: httpx.AsyncClient) -> AnswerCaches:
    exact = (
        ExactCache(ttl_s=settings.cache_ttl_s, max_entries=settings.cache_max_entries)
        if settings.exact_cache
        else None
    )
    if not settings.semantic_cache:
        return AnswerCaches(exact=exact, semantic=None, embed=None)
    url = f"{settings.indexer_url.rstrip('/')}/v1/embeddings"

    async def embed(text: str) -> np.ndarray:
        response = await http.post(
            url, json={"model": settings.embedding_model, "input": text}, timeout=5.0
        )
        response.raise_for_status()
        vector: list[float] = response.json()["data"][0]["embedding"]
        return np.asarray(vector, dtype=np.float32)

    semantic = SemanticCache(
        ttl_s=settings.cache_ttl_s, threshold=settings.semantic_cache_threshold
    )
    return AnswerCaches(exact=exact, semantic=semantic, embed=embed)
