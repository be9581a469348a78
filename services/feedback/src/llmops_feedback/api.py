"""HTTP API of feedback (`/v1`): stored feedback, the annotation queue and the exports.

The tenant is the `X-LLMOps-Tenant` header, as on every internal service (the gateway
sets it from the caller's API key).
"""

# No `from __future__ import annotations`: FastAPI resolves the route-local Annotated aliases.

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from llmops.feedback import COMPLETION_ID_PATTERN
from llmops.service import LateBound
from llmops.tenancy import DEFAULT_TENANT, TenantId
from llmops_feedback.annotation_queue import (
    AnnotationNotFoundError,
    AnnotationQueue,
    AnnotationStatus,
    InvalidCursorError,
    PageCursor,
    QueueEntry,
    Review,
    ReviewConflictError,
)
from llmops_feedback.completion_store import CompletionSelection, CompletionStore, StoredCompletion
from llmops_feedback.exports import Exporter
from llmops_feedback.feedback_store import FeedbackRecord, FeedbackStore

CompletionId = Annotated[str, Path(pattern=COMPLETION_ID_PATTERN)]


@dataclass
class Feedback:
    """What the routes use; built in the service's lifespan."""

    completions: CompletionStore
    feedback: FeedbackStore
    queue: AnnotationQueue
    exporter: Exporter


class AnnotationView(QueueEntry):
    """A queued completion with what a reviewer needs: the conversation and its feedback."""

    completion: StoredCompletion | None = Field(
        None, description="Null until the completion's event has arrived."
    )
    feedback: list[FeedbackRecord] = Field(default_factory=list)


class AnnotationPage(BaseModel):
    items: list[AnnotationView]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


def build_router(service: LateBound[Feedback]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["feedback"])
    Fb = Annotated[Feedback, Depends(service.get)]

    @router.get("/completions/{completion_id}")
    async def get_completion(
        completion_id: CompletionId, fb: Fb, tenant: TenantId = DEFAULT_TENANT
    ) -> StoredCompletion:
        """A completion as this service keeps it (404 until its event has arrived)."""
        completion = await fb.completions.get(tenant, completion_id)
        if completion is None:
            raise HTTPException(404, f"completion {completion_id!r} has not been seen")
        return completion

    @router.get("/completions/{completion_id}/feedback")
    async def completion_feedback(
        completion_id: CompletionId, fb: Fb, tenant: TenantId = DEFAULT_TENANT
    ) -> list[FeedbackRecord]:
        """Every user's current feedback on a completion, oldest first."""
        return await fb.feedback.of_completion(tenant, completion_id)

    @router.get("/annotations")
    async def list_annotations(
        fb: Fb,
        tenant: TenantId = DEFAULT_TENANT,
        status: AnnotationStatus = AnnotationStatus.PENDING,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
    ) -> AnnotationPage:
        """Queued completions with `status`, worst first (lowest score), a page at a time."""
        try:
            after = PageCursor.decode(cursor) if cursor else None
        except InvalidCursorError as exc:
            raise HTTPException(422, str(exc)) from exc
        entries, following = await fb.queue.page(tenant, status, limit=limit, after=after)
        return AnnotationPage(
            items=await _views(fb, tenant, entries),
            next_cursor=following.encode() if following else None,
        )

    @router.get("/annotations/{completion_id}")
    async def get_annotation(
        completion_id: CompletionId, fb: Fb, tenant: TenantId = DEFAULT_TENANT
    ) -> AnnotationView:
        try:
            entry = await fb.queue.get(tenant, completion_id)
        except AnnotationNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        (view,) = await _views(fb, tenant, [entry])
        return view

    @router.post("/annotations/{completion_id}/review")
    async def review_annotation(
        completion_id: CompletionId, body: Review, fb: Fb, tenant: TenantId = DEFAULT_TENANT
    ) -> AnnotationView:
        """Settle a queued completion: approve, correct (the corrected answer is exported),
        label or dismiss. Sending the same review again is harmless; another one is 409."""
        try:
            entry = await fb.queue.review(tenant, completion_id, body)
        except AnnotationNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except ReviewConflictError as exc:
            raise HTTPException(409, str(exc)) from exc
        (view,) = await _views(fb, tenant, [entry])
        return view

    @router.get("/exports/sft", response_class=StreamingResponse)
    async def export_sft(
        fb: Fb,
        selection: Annotated[CompletionSelection, Query()],
        tenant: TenantId = DEFAULT_TENANT,
        include_liked: Annotated[
            bool, Query(description="Also answers users liked, unreviewed and uncorrected.")
        ] = False,
    ) -> StreamingResponse:
        """JSONL for supervised fine-tuning: each exported completion's messages ending with
        the reviewer's correction, the approved answer or the user's correction."""
        lines = fb.exporter.sft(tenant, selection, include_liked=include_liked)
        return _jsonl(lines, "sft.jsonl")

    @router.get("/exports/preferences", response_class=StreamingResponse)
    async def export_preferences(
        fb: Fb,
        selection: Annotated[CompletionSelection, Query()],
        tenant: TenantId = DEFAULT_TENANT,
    ) -> StreamingResponse:
        """JSONL preference pairs (DPO): a corrected or liked answer over the answer users
        disliked, for the same prompt."""
        return _jsonl(fb.exporter.preferences(tenant, selection), "preferences.jsonl")

    return router


async def _views(fb: Feedback, tenant: str, entries: list[QueueEntry]) -> list[AnnotationView]:
    ids = [entry.completion_id for entry in entries]
    completions = await fb.completions.many(tenant, ids)
    feedback = await fb.feedback.of_completions(tenant, ids)
    return [
        AnnotationView(
            **entry.model_dump(),
            completion=completions.get(entry.completion_id),
            feedback=feedback.get(entry.completion_id, []),
        )
        for entry in entries
    ]


def _jsonl(lines: AsyncIterator[str], filename: str) -> StreamingResponse:
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
