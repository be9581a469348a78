"""`POST /v1/prompts/{name}/render` on the gateway: rendered from the prompt cache."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field

from llmops.prompting import RenderedPrompt, RenderError
from llmops_gateway.prompt_cache import PromptCache, PromptNotFoundError


class RenderRequest(BaseModel):
    label: str | None = Field(None, max_length=64)
    version: int | None = Field(None, ge=1)
    variables: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = Field(None, max_length=200)
    session_id: str | None = Field(None, max_length=200)


def build_router(cache: PromptCache) -> APIRouter:
    router = APIRouter(prefix="/v1/prompts", tags=["prompts"])

    @router.post("/{name}/render")
    async def render(
        name: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$")], body: RenderRequest
    ) -> RenderedPrompt:
        """Render `name@label` (default `production`, canary resolved) or `name@version`."""
        try:
            return await cache.render(
                name,
                variables=body.variables,
                label=body.label,
                version=body.version,
                sticky_key=body.user_id or body.session_id,
            )
        except PromptNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except RenderError as exc:
            problems = [problem.model_dump() for problem in exc.problems]
            raise HTTPException(
                422, {"message": "the variables do not fit the prompt", "problems": problems}
            ) from exc

    return router
