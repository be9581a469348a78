"""HTTP API of the prompt registry (`/v1/prompts`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from llmops.prompting import (
    LABEL_PATTERN,
    NAME_PATTERN,
    CompiledPrompts,
    InvalidPromptError,
    PromptSpec,
    RenderedPrompt,
    RenderError,
    RenderRequest,
    Split,
    label_to_resolve,
)
from llmops.service import ServiceContext, service_context
from llmops_prompts.registry import (
    ArchivedError,
    Label,
    LabelMove,
    NotFoundError,
    PromptSummary,
    PromptVersion,
    Registry,
    diff_versions,
    single_version,
)


def _registry(context: Annotated[ServiceContext, Depends(service_context)]) -> Registry:
    return Registry(context.db, context.bus)


Reg = Annotated[Registry, Depends(_registry)]
PromptName = Annotated[str, Path(pattern=NAME_PATTERN, description="Prompt name.")]
LabelName = Annotated[str, Path(pattern=LABEL_PATTERN, description="Label name.")]


class NewVersion(BaseModel):
    spec: PromptSpec
    author: str = Field(min_length=1, max_length=200)
    message: str = Field("", max_length=2000)


class CreatedVersion(PromptVersion):
    created: bool


class LabelMoveRequest(BaseModel):
    version: int | None = Field(None, ge=1)
    split: Split | None = None
    actor: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _one_target(self) -> LabelMoveRequest:
        if (self.version is None) == (self.split is None):
            msg = "give either `version` or `split`"
            raise ValueError(msg)
        return self

    def target(self) -> Split:
        return self.split if self.split is not None else single_version(self.version or 1)


class ChangeRequest(BaseModel):
    actor: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(None, max_length=2000)


class PromptDetail(PromptSummary):
    versions: list[dict[str, Any]]


class VersionDiff(BaseModel):
    name: str
    from_version: int
    to_version: int
    messages_diff: str
    changes: dict[str, list[Any]]


def build_router(compiled: CompiledPrompts) -> APIRouter:
    """The registry's routes; `compiled` caches compiled templates across requests."""
    router = APIRouter(prefix="/v1/prompts", tags=["prompts"])

    @router.post("/{name}/versions", status_code=status.HTTP_201_CREATED)
    async def create_version(
        name: PromptName, body: NewVersion, registry: Reg, response: Response
    ) -> CreatedVersion:
        """Store a new version; an unchanged spec returns the latest version (200)."""
        try:
            version, created = await registry.create_version(
                name, body.spec, author=body.author, message=body.message
            )
        except InvalidPromptError as exc:
            raise HTTPException(
                422, {"message": "the prompt cannot be stored", "reasons": exc.reasons}
            ) from exc
        if not created:
            response.status_code = status.HTTP_200_OK
        return CreatedVersion(**version.model_dump(), created=created)

    @router.get("")
    async def list_prompts(registry: Reg) -> dict[str, list[PromptSummary]]:
        return {"prompts": await registry.all_prompts()}

    @router.get("/{name}")
    async def get_prompt(name: PromptName, registry: Reg) -> PromptDetail:
        summary = await registry.summary(name)
        versions = [
            v.model_dump(include={"version", "author", "message", "created_at", "content_hash"})
            for v in await registry.versions(name)
        ]
        return PromptDetail(**summary.model_dump(), versions=versions)

    @router.get("/{name}/versions/{version}")
    async def get_version(name: PromptName, version: int, registry: Reg) -> PromptVersion:
        return await registry.version(name, version)

    @router.get("/{name}/resolve")
    async def resolve(
        name: PromptName,
        registry: Reg,
        label: Annotated[str | None, Query(pattern=LABEL_PATTERN)] = None,
        version: Annotated[int | None, Query(ge=1)] = None,
        user_id: Annotated[str | None, Query(max_length=200)] = None,
        session_id: Annotated[str | None, Query(max_length=200)] = None,
    ) -> PromptVersion:
        """The version behind `label` (default production; canary resolved for the user or
        session) or the given `version`, with its full content."""
        return await registry.resolve(
            name, label=label, version=version, sticky_key=user_id or session_id
        )

    @router.get("/{name}/diff")
    async def diff(
        name: PromptName,
        registry: Reg,
        from_version: Annotated[int, Query(ge=1)],
        to_version: Annotated[int, Query(ge=1)],
    ) -> VersionDiff:
        old, new = (
            await registry.version(name, from_version),
            await registry.version(name, to_version),
        )
        messages_diff, changes = diff_versions(old, new)
        return VersionDiff(
            name=name,
            from_version=from_version,
            to_version=to_version,
            messages_diff=messages_diff,
            changes=changes,
        )

    @router.get("/{name}/labels/{label}")
    async def get_label(name: PromptName, label: LabelName, registry: Reg) -> Label:
        return await registry.label(name, label)

    @router.put("/{name}/labels/{label}")
    async def move_label(
        name: PromptName, label: LabelName, body: LabelMoveRequest, registry: Reg
    ) -> Label:
        """Point a label at a version, or split its traffic across versions (canary)."""
        return await registry.move_label(
            name, label, body.target(), actor=body.actor, reason=body.reason
        )

    @router.post("/{name}/labels/{label}/rollback")
    async def rollback_label(
        name: PromptName, label: LabelName, body: ChangeRequest, registry: Reg
    ) -> Label:
        """Undo the label's last move."""
        return await registry.rollback_label(name, label, actor=body.actor, reason=body.reason)

    @router.get("/{name}/labels/{label}/history")
    async def label_history(
        name: PromptName, label: LabelName, registry: Reg
    ) -> dict[str, list[LabelMove]]:
        return {"moves": await registry.history(name, label)}

    @router.post("/{name}/render")
    async def render(name: PromptName, body: RenderRequest, registry: Reg) -> RenderedPrompt:
        """Render a version (or the label's, canary resolved) with variables."""
        version = await registry.resolve(
            name, label=body.label, version=body.version, sticky_key=body.sticky_key
        )
        prompt = compiled.get(name, version.version, version.spec)
        try:
            messages = prompt.render(body.variables)
        except RenderError as exc:
            problems = [problem.model_dump() for problem in exc.problems]
            raise HTTPException(
                422, {"message": "the variables do not fit the prompt", "problems": problems}
            ) from exc
        return RenderedPrompt(
            name=name,
            version=version.version,
            label=label_to_resolve(body.label, body.version),
            messages=messages,
            model=version.spec.model,
            parameters=version.spec.parameters,
        )

    @router.post("/{name}/archive")
    async def archive(name: PromptName, body: ChangeRequest, registry: Reg) -> dict[str, str]:
        await registry.archive(name, actor=body.actor, reason=body.reason)
        return {"name": name, "status": "archived"}

    return router


def error_handlers() -> dict[type[Exception], Any]:
    """Domain errors as HTTP answers that say what to fix."""

    async def not_found(_: Any, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    async def archived(_: Any, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    return {NotFoundError: not_found, ArchivedError: archived}
