"""Feedback records, one per (tenant, completion, user), and the log of applied submissions.

A submission (`FeedbackSubmitted`, whose event id names it) either creates its user's
record or is merged into it (what it gives replaces what was stored). The record
remembers its first and last submission, so a redelivered submission is recognised
however far it got before a crash; the submissions log (`feedback_submissions`, one
document per submission, written last) marks a submission as fully handled, so its
redelivery writes and publishes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.events.catalog import FeedbackRecorded, FeedbackSubmitted, Thumbs
from llmops.feedback import feedback_id_for
from llmops.storage import MongoDocument, insert_once

_UPDATE_ATTEMPTS = 5


def feedback_score(thumbs: Thumbs | None, rating: int | None) -> float | None:
    """The normalised score in [0, 1]: up 1, down 0, rating r (r - 1) / 4, the mean of both
    when both are given; None when neither is (as `FeedbackRecorded.score` documents)."""
    parts: list[float] = []
    if thumbs is not None:
        parts.append(1.0 if thumbs is Thumbs.UP else 0.0)
    if rating is not None:
        parts.append((rating - 1) / 4)
    return sum(parts) / len(parts) if parts else None


class FeedbackRecord(BaseModel):
    """A user's current feedback on a completion."""

    feedback_id: str
    tenant: str
    completion_id: str
    user_id: str
    thumbs: Thumbs | None = None
    rating: int | None = None
    categories: list[str] = Field(default_factory=list)
    comment: str | None = None
    corrected_answer: str | None = None
    trace_id: str | None = None
    score: float | None = None
    revision: int = Field(1, description="1 when created, +1 per later submission.")
    submitted_at: datetime = Field(description="When its latest submission was made.")
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Applied:
    """What a submission did to its record."""

    record: FeedbackRecord
    created: bool
    stale: bool = False
    """The record already holds a newer submission: this one was not applied."""


class FeedbackStore:
    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._feedback = db["feedback"]
        self._submissions = db["feedback_submissions"]

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db["feedback"].create_index([("tenant", ASCENDING), ("completion_id", ASCENDING)])

    async def handled(self, submission_id: str) -> bool:
        """Whether the submission was handled to the end before (a redelivery)."""
        return await self._submissions.find_one({"_id": submission_id}) is not None

    async def apply(
        self, tenant: str, submission_id: str, submitted_at: datetime, data: FeedbackSubmitted
    ) -> Applied:
        """Create the user's record from the submission, or merge the submission into it.

        A later submission replaces what it gives (thumbs, rating, non-empty categories,
        comment, corrected answer, trace) and keeps the rest, so a client may send a thumb
        first and the comment after it. Idempotent: applying a submission again changes
        nothing and tells the same.
        """
        feedback_id = feedback_id_for(tenant, data.completion_id, data.user_id)
        given = _given(data)
        now = datetime.now(UTC)
        stamp = {"submitted_at": submitted_at, "last_submission": submission_id, "updated_at": now}
        created = {
            "tenant": tenant,
            "completion_id": data.completion_id,
            "user_id": data.user_id,
            **_content(given),
            **stamp,
            "first_submission": submission_id,
            "created_at": now,
            "revision": 1,
        }
        if await insert_once(self._feedback, feedback_id, created):
            return Applied(_record({**created, "_id": feedback_id}), created=True)
        for _ in range(_UPDATE_ATTEMPTS):
            stored = await self._feedback.find_one({"_id": feedback_id})
            if stored is None:  # deleted under us: never by this service
                msg = f"feedback {feedback_id} vanished while being updated"
                raise RuntimeError(msg)
            if stored["last_submission"] == submission_id:  # applied before a crash
                created_by_it = stored["first_submission"] == submission_id
                return Applied(_record(stored), created=created_by_it)
            if stored["first_submission"] == submission_id or stored["submitted_at"] > (
                submitted_at
            ):
                return Applied(_record(stored), created=False, stale=True)
            merged = _content({key: stored.get(key) for key in _CONTENT} | given)
            updated = await self._feedback.find_one_and_update(
                {"_id": feedback_id, "last_submission": stored["last_submission"]},
                {"$set": merged | stamp, "$inc": {"revision": 1}},
                return_document=True,
            )
            if updated is not None:
                return Applied(_record(updated), created=False)
        msg = f"feedback {feedback_id} kept changing while being updated; retry"
        raise RuntimeError(msg)

    async def log(
        self,
        submission_id: str,
        *,
        tenant: str,
        feedback_id: str,
        recorded: FeedbackRecorded | None,
    ) -> None:
        """Mark a submission handled, with the event it produced (None: it was stale)."""
        await insert_once(
            self._submissions,
            submission_id,
            {
                "tenant": tenant,
                "feedback_id": feedback_id,
                "recorded": recorded.model_dump(mode="json") if recorded else None,
                "logged_at": datetime.now(UTC),
            },
        )

    async def of_completion(self, tenant: str, completion_id: str) -> list[FeedbackRecord]:
        """Every user's feedback on a completion, oldest first."""
        found = await self.of_completions(tenant, [completion_id])
        return found.get(completion_id, [])

    async def of_completions(
        self, tenant: str, completion_ids: Iterable[str]
    ) -> dict[str, list[FeedbackRecord]]:
        ids = list(completion_ids)
        if not ids:
            return {}
        grouped: dict[str, list[FeedbackRecord]] = defaultdict(list)
        query = {"tenant": tenant, "completion_id": {"$in": ids}}
        async for document in self._feedback.find(query).sort("created_at", ASCENDING):
            grouped[document["completion_id"]].append(_record(document))
        return dict(grouped)

    async def completion_ids(self, tenant: str) -> set[str]:
        """The completions of the tenant that have feedback."""
        return set(await self._feedback.distinct("completion_id", {"tenant": tenant}))


_CONTENT = ("thumbs", "rating", "categories", "comment", "corrected_answer", "trace_id")


def _given(data: FeedbackSubmitted) -> MongoDocument:
    """The content fields a submission sets (a null or empty one leaves the stored value)."""
    values: MongoDocument = {
        "thumbs": data.thumbs.value if data.thumbs else None,
        "rating": data.rating,
        "categories": list(data.categories) or None,
        "comment": data.comment,
        "corrected_answer": data.corrected_answer,
        "trace_id": data.trace_id,
    }
    return {key: value for key, value in values.items() if value is not None}


def _content(values: MongoDocument) -> MongoDocument:
    """Every content field (absent ones null, categories a list) with the score they give."""
    content = {key: values.get(key) for key in _CONTENT}
    content["categories"] = content["categories"] or []
    thumbs = Thumbs(content["thumbs"]) if content["thumbs"] else None
    content["score"] = feedback_score(thumbs, content["rating"])
    return content


def _record(document: MongoDocument) -> FeedbackRecord:
    return FeedbackRecord.model_validate({**document, "feedback_id": document["_id"]})
