"""`POST /v1/prompts/{name}/render` on the gateway: rendered from the prompt cache."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from llmops.prompting import NAME_PATTERN, RenderedPrompt, RenderError, RenderRequest
from llmops_gateway.prompt_cache import PromptCache, PromptNotFoundError


def build_router(cache: PromptCache) -> APIRouter:
    router = APIRouter(prefix="/v1/prompts", tags=["prompts"])

    @router.post("/{name}/render")
    async def render(
        name: Annotated[str, Path(pattern=NAME_PATTERN)], body: RenderRequest
    ) -> RenderedPrompt:
        """Render `name@label` (default `production`, canary resolved) or `name@version`."""
        try:
            return await cache.render(
                name,
                variables=body.variables,
                label=body.label,
                version=body.version,
                sticky_key=body.sticky_key,
            )
        except PromptNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except RenderError as exc:
            problems = [problem.model_dump() for problem in exc.problems]
            raise HTTPException(
                422, {"message": "the variables do not fit the prompt", "problems": problems}
            ) from exc

    return router
