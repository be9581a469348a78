"""Scores, ids, review triggers, review requests and queue cursors (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from llmops.events.catalog import MetricScore, Thumbs
from llmops.feedback import feedback_id_for
from llmops_feedback.annotation_queue import (
    CORRECTION,
    NEGATIVE_FEEDBACK,
    InvalidCursorError,
    PageCursor,
    Review,
    ReviewAction,
    feedback_reasons,
    score_reasons,
)
from llmops_feedback.completion_store import StoredCompletion
from llmops_feedback.feedback_store import FeedbackRecord, feedback_score
from llmops_feedback.feedback_worker import recorded_event, recorded_event_id

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def record(**values: object) -> FeedbackRecord:
    base: dict[str, object] = {
        "feedback_id": "f-1",
        "tenant": "acme",
        "completion_id": "chatcmpl-1",
        "user_id": "u-1",
        "submitted_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return FeedbackRecord.model_validate(base | values)


@pytest.mark.parametrize(
    ("thumbs", "rating", "score"),
    [
        (Thumbs.UP, None, 1.0),
        (Thumbs.DOWN, None, 0.0),
        (None, 1, 0.0),
        (None, 3, 0.5),
        (None, 5, 1.0),
        (Thumbs.UP, 2, 0.625),
        (Thumbs.DOWN, 5, 0.5),
        (None, None, None),
    ],
)
def test_the_score_normalises_thumbs_and_ratings_as_the_schema_says(
    thumbs: Thumbs | None, rating: int | None, score: float | None
) -> None:
    assert feedback_score(thumbs, rating) == score


def test_feedback_ids_are_one_per_tenant_completion_and_user() -> None:
    first = feedback_id_for("acme", "chatcmpl-1", "u-1")
    assert first == feedback_id_for("acme", "chatcmpl-1", "u-1")
    others = {
        feedback_id_for("acme", "chatcmpl-1", "u-2"),
        feedback_id_for("acme", "chatcmpl-2", "u-1"),
        feedback_id_for("other", "chatcmpl-1", "u-1"),
        # the separator keeps parts apart: ("a", "bc") is not ("ab", "c")
        feedback_id_for("acme", "chatcmpl-1u", "-1"),
    }
    assert first not in others
    assert len(others) == 4


def test_recorded_event_ids_depend_on_feedback_and_submission() -> None:
    assert recorded_event_id("f", "s1") == recorded_event_id("f", "s1")
    assert len({recorded_event_id("f", "s1"), recorded_event_id("f", "s2")}) == 2


def test_the_recorded_event_is_attributed_to_the_completion_when_known() -> None:
    stored = record(thumbs=Thumbs.DOWN, score=0.0, corrected_answer="x", trace_id="a" * 32)
    alone = recorded_event(stored, created=True, completion=None)
    assert (alone.served_model, alone.prompt, alone.api_key_id) == (None, None, None)
    assert alone.trace_id == "a" * 32  # the submission's, for want of the completion's
    assert alone.has_correction
    assert alone.score == 0.0
    completion = StoredCompletion(
        completion_id="chatcmpl-1",
        tenant="acme",
        time=NOW,
        served_model="m1",
        prompt_name="support",
        prompt_version=3,
        api_key_id="key-1",
        trace_id="b" * 32,
    )
    known = recorded_event(stored, created=False, completion=completion)
    assert (known.served_model, known.prompt, known.api_key_id) == ("m1", "support@3", "key-1")
    assert known.trace_id == "b" * 32  # the completion's trace, where the answer was made
    assert not known.created


def test_negative_feedback_and_corrections_queue_the_completion() -> None:
    assert feedback_reasons(record(score=0.0), 0.5) == ([NEGATIVE_FEEDBACK], 0.0)
    assert feedback_reasons(record(score=0.25), 0.5) == ([NEGATIVE_FEEDBACK], 0.25)
    assert feedback_reasons(record(score=0.5), 0.5) is None
    assert feedback_reasons(record(comment="meh"), 0.5) is None
    assert feedback_reasons(record(corrected_answer="right"), 0.5) == ([CORRECTION], 0.0)
    assert feedback_reasons(record(score=1.0, corrected_answer="tweak"), 0.5) == (
        [CORRECTION],
        1.0,
    )
    assert feedback_reasons(record(score=0.0, corrected_answer="right"), 0.5) == (
        [NEGATIVE_FEEDBACK, CORRECTION],
        0.0,
    )


def test_only_configured_metrics_under_their_threshold_queue_a_completion() -> None:
    thresholds = {"groundedness": 0.5, "faithfulness": 0.7}
    scores = [
        MetricScore(metric="groundedness", value=0.3),
        MetricScore(metric="faithfulness", value=0.6),
        MetricScore(metric="toxicity", value=0.0),  # not configured: ignored
    ]
    assert score_reasons(scores, thresholds) == (
        ["low_score:groundedness", "low_score:faithfulness"],
        0.3,
    )
    assert score_reasons([MetricScore(metric="groundedness", value=0.5)], thresholds) is None


def test_a_review_must_fit_its_action() -> None:
    Review(action=ReviewAction.APPROVE, reviewer="ana")
    Review(action=ReviewAction.CORRECT, reviewer="ana", corrected_answer="right")
    labelled = Review(action=ReviewAction.LABEL, reviewer="ana", categories=["tone", "tone"])
    assert labelled.categories == ["tone"]
    problems = {
        "needs corrected_answer": {"action": "correct", "reviewer": "ana"},
        "corrected_answer goes with action `correct` only": {
            "action": "approve",
            "reviewer": "ana",
            "corrected_answer": "x",
        },
        "`label` needs categories": {"action": "label", "reviewer": "ana"},
        "takes no categories": {"action": "dismiss", "reviewer": "ana", "categories": ["x"]},
        "Input should be 'approve'": {"action": "accept", "reviewer": "ana"},
        "reviewer": {"action": "approve"},
    }
    for message, body in problems.items():
        with pytest.raises(ValidationError, match=message):
            Review.model_validate(body)


def test_page_cursors_round_trip_and_foreign_ones_are_refused() -> None:
    cursor = PageCursor(priority=0.25, completion_id="chatcmpl-9")
    assert PageCursor.decode(cursor.encode()) == cursor
    for token in ("not base64!", "bm90IGpzb24", "WzFd"):  # garbage, "not json", "[1]"
        with pytest.raises(InvalidCursorError, match="next_cursor"):
            PageCursor.decode(token)
