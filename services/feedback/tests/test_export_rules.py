"""Which answer a completion teaches (SFT) and which preference pairs it makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmops.events.catalog import Thumbs
from llmops_feedback.annotation_queue import (
    AnnotationStatus,
    QueueEntry,
    RecordedReview,
    ReviewAction,
)
from llmops_feedback.completion_store import Message, StoredCompletion
from llmops_feedback.export_rules import (
    AnswerSource,
    Evidence,
    LikedAnswer,
    better,
    liked_answer,
    line_key,
    preference_line,
    preference_pair,
    prompt_key,
    sft_answer,
    sft_line,
)
from llmops_feedback.feedback_store import FeedbackRecord, feedback_score

T0 = datetime(2025, 3, 1, tzinfo=UTC)
PROMPT = [Message(role="system", content="Be brief."), Message(role="user", content="2+2?")]


def completion(
    cid: str, output: str | None = "5", *, messages: list[Message] | None = None, at: int = 0
) -> StoredCompletion:
    return StoredCompletion(
        completion_id=cid,
        tenant="acme",
        time=T0 + timedelta(minutes=at),
        served_model="m1",
        prompt_name="math",
        prompt_version=1,
        api_key_id="key-1",
        messages=PROMPT if messages is None else messages,
        output=output,
        trace_id="t" * 32,
    )


def feedback(
    user: str,
    *,
    thumbs: Thumbs | None = None,
    rating: int | None = None,
    correction: str | None = None,
    at: int = 0,
) -> FeedbackRecord:
    when = T0 + timedelta(minutes=at)
    return FeedbackRecord(
        feedback_id=f"f-{user}",
        tenant="acme",
        completion_id="c",
        user_id=user,
        thumbs=thumbs,
        rating=rating,
        corrected_answer=correction,
        score=feedback_score(thumbs, rating),
        submitted_at=when,
        created_at=when,
        updated_at=when,
    )


def reviewed(action: ReviewAction, answer: str | None = None) -> QueueEntry:
    status = {
        ReviewAction.APPROVE: AnnotationStatus.APPROVED,
        ReviewAction.CORRECT: AnnotationStatus.CORRECTED,
        ReviewAction.LABEL: AnnotationStatus.LABELLED,
        ReviewAction.DISMISS: AnnotationStatus.DISMISSED,
    }[action]
    return QueueEntry(
        completion_id="c",
        status=status,
        priority=0.0,
        reasons=["negative_feedback"],
        entered_at=T0,
        review=RecordedReview(
            action=action,
            reviewer="rev",
            corrected_answer=answer,
            categories=["math"] if action is ReviewAction.LABEL else [],
            reviewed_at=T0,
        ),
    )


def test_sft_prefers_the_reviewer_then_the_approval_then_the_latest_user_correction() -> None:
    down = feedback("u1", thumbs=Thumbs.DOWN, correction="4", at=1)
    later = feedback("u2", thumbs=Thumbs.DOWN, correction="four", at=2)
    users = sft_answer(Evidence(completion("c"), [later, down]))
    assert users is not None
    assert (users.text, users.source) == ("four", AnswerSource.USER_CORRECTION)
    corrected = Evidence(completion("c"), [down], reviewed(ReviewAction.CORRECT, "4."))
    answer = sft_answer(corrected)
    assert answer is not None
    assert (answer.text, answer.source) == ("4.", AnswerSource.REVIEWER_CORRECTION)
    approved = sft_answer(Evidence(completion("c", "4"), [down], reviewed(ReviewAction.APPROVE)))
    assert approved is not None
    assert (approved.text, approved.source) == ("4", AnswerSource.REVIEWER_APPROVAL)
    labelled = sft_answer(Evidence(completion("c"), [down], reviewed(ReviewAction.LABEL)))
    assert labelled is not None
    assert labelled.source is AnswerSource.USER_CORRECTION  # a label keeps users' verdicts

    assert sft_answer(Evidence(completion("c"), [down], reviewed(ReviewAction.DISMISS))) is None
    assert sft_answer(Evidence(completion("c"), [feedback("u", thumbs=Thumbs.DOWN)])) is None
    omitted = completion("c", None, messages=[Message(role="user", content="")])
    assert sft_answer(Evidence(omitted, [down])) is None  # no text to learn from


def test_liked_answers_join_sft_only_when_asked() -> None:
    liked = Evidence(completion("c", "4"), [feedback("u", thumbs=Thumbs.UP)])
    assert sft_answer(liked) is None
    answer = sft_answer(liked, include_liked=True)
    assert answer is not None
    assert (answer.text, answer.source) == ("4", AnswerSource.LIKED)
    neutral = Evidence(completion("c", "4"), [feedback("u", rating=3)])
    assert sft_answer(neutral, include_liked=True) is None


def test_a_disliked_answer_pairs_with_its_correction() -> None:
    evidence = Evidence(completion("c", "5"), [feedback("u", thumbs=Thumbs.DOWN, correction="4")])
    pair = preference_pair(evidence, alternative=None)
    assert pair is not None
    assert (pair.chosen.text, pair.rejected, pair.prompt) == ("4", "5", PROMPT)
    line = preference_line(pair)
    assert line["prompt"] == [m.model_dump() for m in PROMPT]
    assert (line["chosen"], line["rejected"]) == ("4", "5")
    assert line["metadata"]["chosen_source"] == "user_correction"
    assert line["metadata"]["prompt"] == "math@1"


def test_an_uncorrected_dislike_pairs_with_the_best_liked_answer_to_its_prompt() -> None:
    disliked = Evidence(completion("c1", "5"), [feedback("u", rating=1)])
    fan = liked_answer(Evidence(completion("c2", "4", at=1), [feedback("u", thumbs=Thumbs.UP)]))
    lukewarm = liked_answer(Evidence(completion("c3", "four", at=2), [feedback("u", rating=4)]))
    approved = liked_answer(
        Evidence(completion("c4", "4!"), [feedback("u", rating=1)], reviewed(ReviewAction.APPROVE))
    )
    assert fan is not None
    assert lukewarm is not None
    assert approved is not None
    best: LikedAnswer | None = None
    for candidate in (lukewarm, fan):
        best = better(best, candidate)
    assert best is fan  # users' score beats recency
    assert better(best, approved) is approved  # an approval beats any score

    pair = preference_pair(disliked, fan.answer)
    assert pair is not None
    assert (pair.chosen.text, pair.chosen.completion_id, pair.rejected) == ("4", "c2", "5")
    assert preference_pair(disliked, None) is None  # nothing better known: no pair


def test_no_pair_from_liked_approved_dismissed_or_unchanged_answers() -> None:
    up = feedback("u", thumbs=Thumbs.UP)
    down = feedback("u", thumbs=Thumbs.DOWN)
    alternative = liked_answer(Evidence(completion("x", "4"), [up]))
    assert alternative is not None
    assert preference_pair(Evidence(completion("c", "5"), [up]), alternative.answer) is None
    approved = Evidence(completion("c", "5"), [down], reviewed(ReviewAction.APPROVE))
    assert preference_pair(approved, alternative.answer) is None
    dismissed = Evidence(completion("c", "5"), [down], reviewed(ReviewAction.DISMISS))
    assert preference_pair(dismissed, alternative.answer) is None
    same = Evidence(completion("c", "5"), [feedback("u", thumbs=Thumbs.DOWN, correction=" 5 ")])
    assert preference_pair(same, None) is None
    errored = Evidence(completion("c", None), [feedback("u", thumbs=Thumbs.DOWN, correction="4")])
    assert preference_pair(errored, None) is None  # nothing to reject
    # a mean under 0.5 is a dislike even when one user liked it
    mixed = Evidence(completion("c", "5"), [up, feedback("v", rating=1), feedback("w", rating=2)])
    assert preference_pair(mixed, alternative.answer) is not None


def test_identical_lines_share_a_key_whatever_their_metadata() -> None:
    first = completion("c1", "5")
    second = completion("c2", "5", at=5)
    down = feedback("u", thumbs=Thumbs.DOWN, correction="4")
    answer_1 = sft_answer(Evidence(first, [down]))
    answer_2 = sft_answer(Evidence(second, [down]))
    assert answer_1 is not None
    assert answer_2 is not None
    line_1, line_2 = sft_line(first, answer_1), sft_line(second, answer_2)
    assert line_1["metadata"] != line_2["metadata"]
    assert line_key(line_1) == line_key(line_2)
    assert line_1["messages"][-1] == {"role": "assistant", "content": "4"}
    other_prompt = [*PROMPT[:1], Message(role="user", content="2+3?")]
    assert prompt_key(PROMPT) != prompt_key(other_prompt)
    assert prompt_key(PROMPT) == prompt_key(list(PROMPT))
