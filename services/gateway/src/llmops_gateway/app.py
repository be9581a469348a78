"""Public OpenAI-compatible API: keys, quotas, routing, caches.

So far it renders prompts from its cache (kept fresh by `prompts.changed`), takes document
uploads for ingestion and proxies retrieval; issue #4 adds chat completions, keys and quotas.
"""

from fastapi import FastAPI

from llmops.events.catalog import CONTRACTS, Topic
from llmops.service import ServiceContext, create_service_app
from llmops_gateway import document_routes, prompt_routes
from llmops_gateway.prompt_cache import PromptCache
from llmops_gateway.settings import GatewaySettings

CONSUMES: tuple[Topic, ...] = (Topic.PROMPTS_CHANGED,)


def create_app(settings: GatewaySettings) -> FastAPI:
    prompts = PromptCache(settings.prompts_url)

    def wire(context: ServiceContext) -> None:
        prompts.bind(context.http)
        context.bus.subscribe(CONTRACTS[Topic.PROMPTS_CHANGED], prompts.on_prompt_changed)

    return create_service_app(
        settings,
        description=__doc__ or "",
        routers=[prompt_routes.build_router(prompts), document_routes.build_router(settings)],
        wire=wire,
    )
