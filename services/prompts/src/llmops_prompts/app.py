"""Versioned prompt registry with labels, canary splits and change events (`/v1/prompts`)."""

from fastapi import FastAPI

from llmops.prompting import CompiledPrompts
from llmops.service import ServiceContext, create_service_app
from llmops_prompts.api import build_router, error_handlers
from llmops_prompts.registry import Registry
from llmops_prompts.settings import PromptsSettings


def create_app(settings: PromptsSettings) -> FastAPI:
    async def wire(context: ServiceContext) -> None:
        await Registry.create_indexes(context.db)

    app = create_service_app(
        settings,
        description=__doc__ or "",
        routers=[build_router(CompiledPrompts())],
        wire=wire,
    )
    for error, handler in error_handlers().items():
        app.add_exception_handler(error, handler)
    return app
