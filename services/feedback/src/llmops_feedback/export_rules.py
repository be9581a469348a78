"""Which answer a completion teaches, from its users' feedback and its review (pure rules).

- A completion is *disliked* when its users' mean score is under 0.5, a user corrected it,
  or a reviewer corrected it; *liked* when a reviewer approved it, or its users' mean score
  is over 0.5 with no correction. A dismissed completion is neither and is never exported;
  an approval overrides users' complaints.
- SFT target, first that applies: the reviewer's correction, the answer a reviewer
  approved, the latest user correction, and (when asked for) the answer users liked.
- Preference pair: only for a disliked completion with an answer (`rejected`). `chosen` is
  its reviewer's correction, else its latest user correction, else the best liked answer
  to the same prompt (identical messages) among the exported completions: approved first,
  then the highest mean score, then the newest. No pair when chosen equals rejected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from llmops_feedback.annotation_queue import AnnotationStatus, QueueEntry
from llmops_feedback.completion_store import Message, StoredCompletion
from llmops_feedback.feedback_store import FeedbackRecord

NEUTRAL = 0.5


class AnswerSource(StrEnum):
    REVIEWER_CORRECTION = "reviewer_correction"
    REVIEWER_APPROVAL = "reviewer_approval"
    USER_CORRECTION = "user_correction"
    LIKED = "liked"


@dataclass(frozen=True)
class Answer:
    text: str
    source: AnswerSource
    completion_id: str
    """The completion whose feedback or review gave this answer."""


@dataclass(frozen=True)
class Evidence:
    """What is known about one completion: the completion, its feedback, its queue entry."""

    completion: StoredCompletion
    feedback: Sequence[FeedbackRecord] = ()
    annotation: QueueEntry | None = None

    @property
    def status(self) -> AnnotationStatus | None:
        return self.annotation.status if self.annotation else None

    @property
    def mean_score(self) -> float | None:
        scores = [record.score for record in self.feedback if record.score is not None]
        return sum(scores) / len(scores) if scores else None

    @property
    def user_correction(self) -> FeedbackRecord | None:
        """The latest user feedback carrying a corrected answer."""
        corrections = [r for r in self.feedback if r.corrected_answer is not None]
        return max(corrections, key=lambda r: r.submitted_at) if corrections else None


@dataclass(frozen=True)
class LikedAnswer:
    """A liked answer and how strongly: approved beats users' score, which beats age."""

    rank: tuple[bool, float, datetime]
    answer: Answer


@dataclass(frozen=True)
class PreferencePair:
    prompt: list[Message]
    chosen: Answer
    rejected: str
    completion: StoredCompletion


def disliked(evidence: Evidence) -> bool:
    if evidence.status in {AnnotationStatus.APPROVED, AnnotationStatus.DISMISSED}:
        return False
    if evidence.status is AnnotationStatus.CORRECTED or evidence.user_correction is not None:
        return True
    mean = evidence.mean_score
    return mean is not None and mean < NEUTRAL


def liked(evidence: Evidence) -> bool:
    if evidence.status is AnnotationStatus.APPROVED:
        return True
    if evidence.status is AnnotationStatus.DISMISSED or disliked(evidence):
        return False
    mean = evidence.mean_score
    return mean is not None and mean > NEUTRAL


def correction(evidence: Evidence) -> Answer | None:
    """The answer someone said is right instead: the reviewer's, else the latest user's."""
    completion_id = evidence.completion.completion_id
    if evidence.status in {AnnotationStatus.APPROVED, AnnotationStatus.DISMISSED}:
        return None
    review = evidence.annotation.review if evidence.annotation else None
    if evidence.status is AnnotationStatus.CORRECTED and review and review.corrected_answer:
        return Answer(review.corrected_answer, AnswerSource.REVIEWER_CORRECTION, completion_id)
    user = evidence.user_correction
    if user is not None and user.corrected_answer is not None:
        return Answer(user.corrected_answer, AnswerSource.USER_CORRECTION, completion_id)
    return None


def sft_answer(evidence: Evidence, *, include_liked: bool = False) -> Answer | None:
    """The answer the completion's conversation should end with in SFT data, if any."""
    completion = evidence.completion
    if evidence.status is AnnotationStatus.DISMISSED or not completion.has_text:
        return None
    corrected = correction(evidence)
    if corrected is not None and corrected.source is AnswerSource.REVIEWER_CORRECTION:
        return corrected
    if evidence.status is AnnotationStatus.APPROVED and completion.output:
        return Answer(completion.output, AnswerSource.REVIEWER_APPROVAL, completion.completion_id)
    if corrected is not None:
        return corrected
    if include_liked and liked(evidence) and completion.output:
        return Answer(completion.output, AnswerSource.LIKED, completion.completion_id)
    return None


def liked_answer(evidence: Evidence) -> LikedAnswer | None:
    """The completion's own answer as a `chosen` candidate for its prompt, if liked."""
    completion = evidence.completion
    if not liked(evidence) or not completion.output or not completion.has_text:
        return None
    approved = evidence.status is AnnotationStatus.APPROVED
    source = AnswerSource.REVIEWER_APPROVAL if approved else AnswerSource.LIKED
    return LikedAnswer(
        rank=(approved, evidence.mean_score or 0.0, completion.time),
        answer=Answer(completion.output, source, completion.completion_id),
    )


def better(first: LikedAnswer | None, second: LikedAnswer) -> LikedAnswer:
    return second if first is None or second.rank > first.rank else first


def preference_pair(evidence: Evidence, alternative: Answer | None) -> PreferencePair | None:
    """The pair a disliked completion makes: its correction (else `alternative`, the best
    liked answer to the same prompt) over its own answer."""
    completion = evidence.completion
    if not disliked(evidence) or not completion.output or not completion.has_text:
        return None
    chosen = correction(evidence) or alternative
    if chosen is None or chosen.text.strip() == completion.output.strip():
        return None
    return PreferencePair(completion.messages, chosen, completion.output, completion)


def prompt_key(messages: Sequence[Message]) -> str:
    """Identifies a prompt: identical messages, identical key."""
    return _digest([[m.role, m.content] for m in messages])


def sft_line(completion: StoredCompletion, answer: Answer) -> dict[str, Any]:
    return {
        "messages": [
            *(m.model_dump() for m in completion.messages),
            {"role": "assistant", "content": answer.text},
        ],
        "metadata": _metadata(completion) | {"source": answer.source.value},
    }


def preference_line(pair: PreferencePair) -> dict[str, Any]:
    return {
        "prompt": [m.model_dump() for m in pair.prompt],
        "chosen": pair.chosen.text,
        "rejected": pair.rejected,
        "metadata": _metadata(pair.completion)
        | {"chosen_source": pair.chosen.source.value, "chosen_from": pair.chosen.completion_id},
    }


def line_key(line: dict[str, Any]) -> str:
    """What makes two export lines the same, their metadata aside."""
    return _digest({key: value for key, value in line.items() if key != "metadata"})


def _metadata(completion: StoredCompletion) -> dict[str, Any]:
    return {
        "completion_id": completion.completion_id,
        "time": completion.time.isoformat(),
        "served_model": completion.served_model,
        "prompt": completion.prompt,
        "trace_id": completion.trace_id,
    }


def _digest(value: Any) -> str:
    canonical = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
