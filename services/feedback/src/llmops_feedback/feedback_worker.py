"""The feedback service's event handlers.

- `llm.completions`: keep each completion once (attribution, review, exports).
- `feedback.events`: store the user's feedback (create or update its record), queue the
  completion for review when the feedback is negative or corrects the answer, publish
  `FeedbackRecorded` attributed to the completion's model, prompt, key and trace (null
  when the completion has not been seen yet: feedback is never held back for it), then
  log the submission as handled. A redelivered submission that was handled writes and
  publishes nothing; one interrupted by a crash is finished, its event published under
  the same id (uuid5 of feedback id and submission id), so a duplicate is recognisable.
- `eval.results` (kind `online`): queue completions whose scores fall under thresholds.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from llmops.bus import EventBus
from llmops.events.catalog import (
    CONTRACTS,
    CompletionRecorded,
    EvaluationScored,
    FeedbackRecorded,
    FeedbackSubmitted,
    ScoreKind,
    Topic,
)
from llmops.events.envelope import Envelope
from llmops.telemetry import get_logger
from llmops_feedback.annotation_queue import AnnotationQueue, feedback_reasons, score_reasons
from llmops_feedback.completion_store import CompletionStore, StoredCompletion
from llmops_feedback.feedback_store import FeedbackRecord, FeedbackStore

SUBMISSIONS = CONTRACTS[Topic.FEEDBACK_EVENTS]
COMPLETIONS = CONTRACTS[Topic.LLM_COMPLETIONS]
SCORES = CONTRACTS[Topic.EVAL_RESULTS]
RECORDED = CONTRACTS[Topic.FEEDBACK_RECORDED]

_RECORDED_IDS = uuid.UUID("0e7d2b8c-3a5f-4c61-b1f4-8d2a6c9e5f13")

_log = get_logger(__name__)


def recorded_event_id(feedback_id: str, submission_id: str) -> str:
    """The id of the one `FeedbackRecorded` event a submission produces."""
    return str(uuid.uuid5(_RECORDED_IDS, f"{feedback_id}\x00{submission_id}"))


def recorded_event(
    record: FeedbackRecord, *, created: bool, completion: StoredCompletion | None
) -> FeedbackRecorded:
    """The `FeedbackRecorded` payload of a stored record, attributed to its completion."""
    return FeedbackRecorded(
        feedback_id=record.feedback_id,
        completion_id=record.completion_id,
        user_id=record.user_id,
        thumbs=record.thumbs,
        rating=record.rating,
        categories=record.categories,
        has_correction=record.corrected_answer is not None,
        score=record.score,
        created=created,
        served_model=completion.served_model if completion else None,
        prompt=completion.prompt if completion else None,
        api_key_id=completion.api_key_id if completion else None,
        trace_id=(completion.trace_id if completion else None) or record.trace_id,
    )


class FeedbackWorker:
    def __init__(
        self,
        *,
        bus: EventBus,
        completions: CompletionStore,
        feedback: FeedbackStore,
        queue: AnnotationQueue,
        review_feedback_below: float,
        review_score_below: Mapping[str, float],
    ) -> None:
        self._bus = bus
        self._completions = completions
        self._feedback = feedback
        self._queue = queue
        self._feedback_below = review_feedback_below
        self._score_below = dict(review_score_below)

    def subscribe(self) -> None:
        self._bus.subscribe(SUBMISSIONS, self.on_submission)
        self._bus.subscribe(COMPLETIONS, self.on_completion)
        self._bus.subscribe(SCORES, self.on_scores)

    async def on_completion(self, event: Envelope[CompletionRecorded]) -> None:
        await self._completions.record(event)

    async def on_submission(self, event: Envelope[FeedbackSubmitted]) -> None:
        if await self._feedback.handled(event.id):
            return
        tenant, data = event.tenant, event.data
        applied = await self._feedback.apply(tenant, event.id, event.time, data)
        record = applied.record
        if applied.stale:
            _log.info(
                "feedback submission superseded by a newer one; not applied",
                feedback_id=record.feedback_id,
                submission_id=event.id,
            )
            await self._feedback.log(
                event.id, tenant=tenant, feedback_id=record.feedback_id, recorded=None
            )
            return
        review = feedback_reasons(record, self._feedback_below)
        if review is not None:
            await self._queue.enter(tenant, record.completion_id, *review)
        completion = await self._completions.get(tenant, record.completion_id)
        recorded = recorded_event(record, created=applied.created, completion=completion)
        await self._bus.emit(
            RECORDED,
            recorded,
            tenant=tenant,
            subject=record.completion_id,
            event_id=recorded_event_id(record.feedback_id, event.id),
        )
        await self._feedback.log(
            event.id, tenant=tenant, feedback_id=record.feedback_id, recorded=recorded
        )

    async def on_scores(self, event: Envelope[EvaluationScored]) -> None:
        data = event.data
        if data.kind is not ScoreKind.ONLINE or data.completion_id is None:
            return
        review = score_reasons(data.scores, self._score_below)
        if review is not None:
            await self._queue.enter(event.tenant, data.completion_id, *review)
