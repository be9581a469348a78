"""The annotation queue: completions a person should look at, worst first.

A completion enters once (its entry's `_id` is `<tenant>/<completion id>`) when a user's
feedback is negative (score under FEEDBACK_REVIEW_FEEDBACK_BELOW) or carries a corrected
answer, or when an online evaluation score falls under its FEEDBACK_REVIEW_SCORE_BELOW
threshold. Later reasons are added to the entry and its priority (the lowest score that
brought it in; lower is worse) only ever drops. A reviewer settles an entry once: approve
(the answer is good), correct (with the right answer), label (with categories) or
dismiss; the same review sent again is accepted, a different one is a conflict.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.events.catalog import MetricScore
from llmops.storage import MongoDocument, insert_once
from llmops_feedback.feedback_store import FeedbackRecord

NEGATIVE_FEEDBACK = "negative_feedback"
CORRECTION = "correction"
LOW_SCORE = "low_score:"
"""Prefix of the reason a low online score gives, followed by the metric."""

Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class AnnotationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    CORRECTED = "corrected"
    LABELLED = "labelled"
    DISMISSED = "dismissed"


class ReviewAction(StrEnum):
    APPROVE = "approve"
    CORRECT = "correct"
    LABEL = "label"
    DISMISS = "dismiss"


OUTCOMES: Mapping[ReviewAction, AnnotationStatus] = {
    ReviewAction.APPROVE: AnnotationStatus.APPROVED,
    ReviewAction.CORRECT: AnnotationStatus.CORRECTED,
    ReviewAction.LABEL: AnnotationStatus.LABELLED,
    ReviewAction.DISMISS: AnnotationStatus.DISMISSED,
}


class Review(BaseModel):
    """A reviewer's decision on a queued completion."""

    model_config = ConfigDict(extra="forbid")

    action: ReviewAction = Field(
        description="approve (the answer is good), correct (give corrected_answer), label "
        "(give categories) or dismiss (nothing to learn from it)."
    )
    reviewer: str = Field(min_length=1, max_length=128, description="Who reviews.")
    corrected_answer: str | None = Field(
        None, max_length=32_000, description="The right answer; with `correct` only."
    )
    categories: list[Category] = Field(
        default_factory=list,
        max_length=10,
        description="Issue categories; needed by `label`, allowed with approve and correct.",
    )
    note: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _fits_the_action(self) -> Self:
        answer = (self.corrected_answer or "").strip()
        if self.action is ReviewAction.CORRECT and not answer:
            raise ValueError("action `correct` needs corrected_answer: the answer that is right")
        if self.action is not ReviewAction.CORRECT and self.corrected_answer is not None:
            msg = (
                f"corrected_answer goes with action `correct` only; "
                f"send action `correct` or leave corrected_answer out of `{self.action}`"
            )
            raise ValueError(msg)
        if self.action is ReviewAction.LABEL and not self.categories:
            raise ValueError('action `label` needs categories, e.g. ["hallucination"]')
        if self.action is ReviewAction.DISMISS and self.categories:
            raise ValueError("action `dismiss` takes no categories; use `label` to categorise")
        self.categories = list(dict.fromkeys(self.categories))
        return self


class RecordedReview(Review):
    reviewed_at: datetime


class QueueEntry(BaseModel):
    completion_id: str
    status: AnnotationStatus
    priority: float = Field(description="The lowest score that queued it; lower is worse.")
    reasons: list[str]
    entered_at: datetime
    review: RecordedReview | None = None


class AnnotationNotFoundError(LookupError):
    """The completion is not in the tenant's annotation queue."""


class ReviewConflictError(Exception):
    """The entry was already reviewed differently."""


class InvalidCursorError(ValueError):
    """A page cursor this queue did not make."""


def feedback_reasons(record: FeedbackRecord, below: float) -> tuple[list[str], float] | None:
    """Why a user's feedback queues its completion, and at which priority; None if it does not.

    A correction without a score queues at 0: the user says the answer was wrong.
    """
    reasons = []
    if record.score is not None and record.score < below:
        reasons.append(NEGATIVE_FEEDBACK)
    if record.corrected_answer is not None:
        reasons.append(CORRECTION)
    if not reasons:
        return None
    return reasons, record.score if record.score is not None else 0.0


def score_reasons(
    scores: Iterable[MetricScore], thresholds: Mapping[str, float]
) -> tuple[list[str], float] | None:
    """The online scores under their metric's threshold, as reasons and the lowest value."""
    low = [
        (score.metric, score.value)
        for score in scores
        if score.metric in thresholds and score.value < thresholds[score.metric]
    ]
    if not low:
        return None
    return [f"{LOW_SCORE}{metric}" for metric, _ in low], min(value for _, value in low)


class PageCursor(BaseModel):
    """Where a page of the queue ended: the last entry's priority and completion id."""

    priority: float
    completion_id: str

    def encode(self) -> str:
        raw = json.dumps([self.priority, self.completion_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            priority, completion_id = json.loads(raw)
            return cls(priority=priority, completion_id=completion_id)
        except (binascii.Error, ValueError, TypeError) as exc:
            msg = "the cursor is not one this API returned: pass `next_cursor` as it came"
            raise InvalidCursorError(msg) from exc


class AnnotationQueue:
    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._entries = db["annotations"]

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db["annotations"].create_index(
            [("tenant", ASCENDING), ("status", ASCENDING), ("priority", ASCENDING)]
        )

    async def enter(
        self, tenant: str, completion_id: str, reasons: Sequence[str], priority: float
    ) -> bool:
        """Queue the completion, or add the reasons to its entry; True when the entry is new.

        Idempotent: entering again for the same reasons changes nothing.
        """
        entry_id = _entry_id(tenant, completion_id)
        now = datetime.now(UTC)
        new = {
            "tenant": tenant,
            "completion_id": completion_id,
            "status": AnnotationStatus.PENDING.value,
            "priority": priority,
            "reasons": list(dict.fromkeys(reasons)),
            "entered_at": now,
            "review": None,
        }
        if await insert_once(self._entries, entry_id, new):
            return True
        stored = await self._entries.find_one({"_id": entry_id})
        if (
            stored is not None
            and stored["priority"] <= priority
            and set(reasons) <= set(stored["reasons"])
        ):
            return False
        await self._entries.update_one(
            {"_id": entry_id},
            {"$min": {"priority": priority}, "$addToSet": {"reasons": {"$each": list(reasons)}}},
        )
        return False

    async def page(
        self,
        tenant: str,
        status: AnnotationStatus,
        *,
        limit: int,
        after: PageCursor | None = None,
    ) -> tuple[list[QueueEntry], PageCursor | None]:
        """Entries with `status`, worst first (priority, then completion id), and the cursor
        of the next page (None on the last)."""
        query: MongoDocument = {"tenant": tenant, "status": status.value}
        if after is not None:
            query["$or"] = [
                {"priority": {"$gt": after.priority}},
                {"priority": after.priority, "completion_id": {"$gt": after.completion_id}},
            ]
        cursor = (
            self._entries.find(query)
            .sort([("priority", ASCENDING), ("completion_id", ASCENDING)])
            .limit(limit + 1)
        )
        entries = [_entry(document) async for document in cursor]
        if len(entries) <= limit:
            return entries, None
        last = entries[limit - 1]
        return entries[:limit], PageCursor(priority=last.priority, completion_id=last.completion_id)

    async def get(self, tenant: str, completion_id: str) -> QueueEntry:
        found = await self._entries.find_one({"_id": _entry_id(tenant, completion_id)})
        if found is None:
            msg = f"completion {completion_id!r} is not in the annotation queue"
            raise AnnotationNotFoundError(msg)
        return _entry(found)

    async def review(self, tenant: str, completion_id: str, review: Review) -> QueueEntry:
        """Settle a pending entry; repeating the same review answers the entry as it is."""
        entry_id = _entry_id(tenant, completion_id)
        recorded = RecordedReview(**review.model_dump(), reviewed_at=datetime.now(UTC))
        settled = await self._entries.find_one_and_update(
            {"_id": entry_id, "status": AnnotationStatus.PENDING.value},
            {
                "$set": {
                    "status": OUTCOMES[review.action].value,
                    "review": recorded.model_dump(mode="json")
                    | {"reviewed_at": recorded.reviewed_at},
                }
            },
            return_document=True,
        )
        if settled is not None:
            return _entry(settled)
        entry = await self.get(tenant, completion_id)
        earlier = entry.review
        if (
            earlier is not None
            and Review.model_validate(earlier.model_dump(exclude={"reviewed_at"})) == review
        ):
            return entry
        done = (
            f"{earlier.action} by {earlier.reviewer} at {earlier.reviewed_at.isoformat()}"
            if earlier
            else entry.status.value
        )
        msg = (
            f"completion {completion_id!r} was already reviewed ({done}); an entry is reviewed once"
        )
        raise ReviewConflictError(msg)

    async def of_completions(
        self, tenant: str, completion_ids: Iterable[str]
    ) -> dict[str, QueueEntry]:
        ids = [_entry_id(tenant, completion_id) for completion_id in completion_ids]
        if not ids:
            return {}
        cursor = self._entries.find({"_id": {"$in": ids}})
        return {document["completion_id"]: _entry(document) async for document in cursor}

    async def reviewed_with_answer(self, tenant: str) -> set[str]:
        """Completions a reviewer approved or corrected: they have an answer to export."""
        statuses = [AnnotationStatus.APPROVED.value, AnnotationStatus.CORRECTED.value]
        query = {"tenant": tenant, "status": {"$in": statuses}}
        return set(await self._entries.distinct("completion_id", query))


def _entry_id(tenant: str, completion_id: str) -> str:
    return f"{tenant}/{completion_id}"


def _entry(document: MongoDocument) -> QueueEntry:
    return QueueEntry.model_validate(document)
