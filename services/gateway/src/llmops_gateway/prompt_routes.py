"""`POST /v1/prompts/{name}/render` on the gateway: rendered from the prompt cache.

Any API key may render (role `analyst` too: a render has no side effect).
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency aliases
# made inside build_router (they close over `access`) at runtime.
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from llmops.llm.errors import ApiError
from llmops.prompting import NAME_PATTERN, RenderedPrompt, RenderError, RenderRequest
from llmops_gateway.api_keys import Caller
from llmops_gateway.auth import EVERY_ROLE, Access
from llmops_gateway.prompt_cache import PromptCache, PromptNotFoundError


def build_router(cache: PromptCache, access: Access) -> APIRouter:
    router = APIRouter(prefix="/v1/prompts", tags=["prompts"])
    AnyKey = Annotated[Caller, Depends(access.caller(*EVERY_ROLE))]

    @router.post("/{name}/render")
    async def render(
        caller: AnyKey, name: Annotated[str, Path(pattern=NAME_PATTERN)], body: RenderRequest
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
            raise ApiError(404, str(exc), code="prompt_not_found") from exc
        except RenderError as exc:
            first = exc.problems[0].variable if exc.problems else None
            raise ApiError(
                400,
                f"the variables do not fit the prompt: {exc}",
                code="invalid_variables",
                param=f"variables.{first}" if first else "variables",
            ) from exc

    return router
