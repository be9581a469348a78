"""The feedback service against real Kafka and FerretDB: feedback stored once per user and
updated by later submissions, `feedback.recorded` events (attributed, deterministic ids,
no duplicates on redelivery), feedback before its completion, and the annotation queue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from feedback_stack import (
    FeedbackStack,
    completion,
    day,
    feedback_service,
    online_scores,
    submission,
)

from llmops.events.catalog import ScoreKind, Thumbs
from llmops.feedback import feedback_id_for
from llmops.testing import SettingsFactory, wait_until
from llmops_feedback.annotation_queue import AnnotationQueue
from llmops_feedback.completion_store import CompletionStore
from llmops_feedback.feedback_store import FeedbackStore
from llmops_feedback.feedback_worker import FeedbackWorker, recorded_event_id

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]


def _by(user: str) -> Any:
    return lambda events: any(e.data.user_id == user for e in events)


async def test_feedback_is_stored_once_per_user_merged_by_later_submissions_and_recorded(
    service_settings: SettingsFactory,
) -> None:
    async with feedback_service(service_settings) as fb:
        source = completion("chatcmpl-a", question="Where is my order?", output="On Mars.")
        await fb.publish(source)
        await fb.stored("chatcmpl-a")
        first = submission("chatcmpl-a", "u1", thumbs=Thumbs.DOWN, categories=["wrong"], at=day(2))
        update = submission(
            "chatcmpl-a", "u1", thumbs=Thumbs.UP, comment="found it", at=day(2) + timedelta(hours=1)
        )
        other = submission("chatcmpl-a", "u2", rating=2, at=day(3))
        await fb.publish(first, first, update, other)  # `first` is delivered twice
        events = await fb.recorded_until(_by("u2"))

        older = submission("chatcmpl-a", "u1", thumbs=Thumbs.DOWN, at=day(1))  # out of date
        marker = submission("chatcmpl-a", "u3", thumbs=Thumbs.UP, at=day(4))
        await fb.publish(older, marker)
        after = await fb.recorded_until(_by("u3"))
        stored = await fb.feedback_of("chatcmpl-a")
        entry = (await fb.get("/v1/annotations/chatcmpl-a")).json()

    u1 = feedback_id_for("acme", "chatcmpl-a", "u1")
    assert [(e.data.user_id, e.data.created, e.data.score) for e in events] == [
        ("u1", True, 0.0),
        ("u1", False, 1.0),
        ("u2", True, 0.25),
    ]
    assert [e.id for e in events[:2]] == [
        recorded_event_id(u1, first.id),
        recorded_event_id(u1, update.id),
    ]
    assert {e.data.feedback_id for e in events} == {u1, feedback_id_for("acme", "chatcmpl-a", "u2")}
    for event in events:
        assert (event.tenant, event.subject, event.source) == ("acme", "chatcmpl-a", "feedback")
        data = event.data
        assert (data.served_model, data.prompt, data.api_key_id) == ("m1", "support@1", "key-app")
        assert data.trace_id == source.data.trace_id
    assert events[1].data.categories == ["wrong"]  # kept: the update did not name categories
    assert [e.data.user_id for e in after] == ["u1", "u1", "u2", "u3"]  # none for `older`

    assert [(r["user_id"], r["revision"]) for r in stored] == [("u1", 2), ("u2", 1), ("u3", 1)]
    mine = stored[0]
    assert mine["feedback_id"] == u1
    assert (mine["thumbs"], mine["categories"], mine["comment"], mine["score"]) == (
        "up",
        ["wrong"],
        "found it",
        1.0,
    )
    # u1's first feedback queued the completion; u2's low rating added nothing new
    assert (entry["status"], entry["priority"], entry["reasons"]) == (
        "pending",
        0.0,
        ["negative_feedback"],
    )


async def test_feedback_before_its_completion_is_recorded_without_attribution(
    service_settings: SettingsFactory,
) -> None:
    async with feedback_service(service_settings) as fb:
        early = submission("chatcmpl-late", "u1", thumbs=Thumbs.UP, trace_id="ab" * 16)
        await fb.publish(early)
        (recorded,) = await fb.recorded_until(lambda events: len(events) >= 1)
        await fb.publish(completion("chatcmpl-late", question="Hi?", output="Hello."))
        await fb.stored("chatcmpl-late")
        await fb.publish(submission("chatcmpl-late", "u1", comment="thanks"))
        events = await fb.recorded_until(lambda events: len(events) >= 2)
        stored = await fb.feedback_of("chatcmpl-late")

    data = recorded.data
    assert (data.served_model, data.prompt, data.api_key_id) == (None, None, None)
    assert data.trace_id == "ab" * 16
    assert (data.created, data.score) == (True, 1.0)
    later = events[1].data
    assert (later.created, later.served_model, later.prompt) == (False, "m1", "support@1")
    assert len(stored) == 1
    assert (stored[0]["thumbs"], stored[0]["comment"]) == ("up", "thanks")


class _CrashBeforeLog(FeedbackStore):
    """Fails once where a crash would hurt most: after publishing, before logging."""

    crashed = False

    async def log(self, submission_id: str, **values: Any) -> None:
        if not self.crashed:
            self.crashed = True
            raise ConnectionError("the process died here")
        await super().log(submission_id, **values)


async def test_a_submission_redelivered_after_a_crash_is_published_again_under_the_same_id(
    service_settings: SettingsFactory,
) -> None:
    async with feedback_service(service_settings) as fb:
        db = fb.app.state.context.db
        worker = FeedbackWorker(
            bus=fb.bus,
            completions=CompletionStore(db),
            feedback=_CrashBeforeLog(db),
            queue=AnnotationQueue(db),
            review_feedback_below=0.5,
            review_score_below={},
        )
        event = submission("chatcmpl-crash", "u1", thumbs=Thumbs.DOWN)
        with pytest.raises(ConnectionError):
            await worker.on_submission(event)
        await worker.on_submission(event)  # redelivered: finishes the work
        await worker.on_submission(event)  # redelivered again: handled, nothing more
        await worker.on_submission(submission("chatcmpl-crash", "u2", thumbs=Thumbs.UP))
        events = await fb.recorded_until(_by("u2"))
        stored = await fb.feedback_of("chatcmpl-crash")

    first, again, marker = events
    assert (
        first.id
        == again.id
        == recorded_event_id(feedback_id_for("acme", "chatcmpl-crash", "u1"), event.id)
    )
    assert first.data == again.data
    assert first.data.created  # still the creation, not an update
    assert marker.data.user_id == "u2"
    assert [(r["user_id"], r["revision"]) for r in stored] == [("u1", 1), ("u2", 1)]


async def _pending(fb: FeedbackStack, tenant: str = "acme", **params: Any) -> dict[str, Any]:
    response = await fb.get("/v1/annotations", tenant=tenant, **params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def test_negative_feedback_and_low_online_scores_fill_the_queue_worst_first(
    service_settings: SettingsFactory,
) -> None:
    async with feedback_service(service_settings, review_score_below={"groundedness": 0.5}) as fb:
        for completion_id in ("c-down", "c-rating", "c-low", "c-fix"):
            await fb.publish(completion(completion_id, question=completion_id, output="answer"))
        await fb.publish(
            submission("c-down", "u1", thumbs=Thumbs.DOWN),
            submission("c-rating", "u1", rating=2),
            # a like queues nothing; the correction after it does, at the like's score
            submission("c-fix", "u1", thumbs=Thumbs.UP),
            submission("c-fix", "u2", thumbs=Thumbs.UP, corrected_answer="a better answer"),
            submission("o-down", "u1", thumbs=Thumbs.DOWN, tenant="other"),
        )
        await fb.publish(
            online_scores("c-down", {"groundedness": 0.1}),
            # in order on one key: only the last of these queues c-low
            online_scores("c-low", {"groundedness": 0.9}),
            online_scores("c-low", {"pii_leak": 0.0}),  # a metric without a threshold
            online_scores("c-low", {"groundedness": 0.05}, kind=ScoreKind.ITEM),
            online_scores("c-low", {"groundedness": 0.3}),
        )

        async def queued() -> Any:
            page = await _pending(fb, limit=10)
            reasons = {item["completion_id"]: item["reasons"] for item in page["items"]}
            complete = len(reasons) == 4 and len(reasons.get("c-down", [])) == 2
            # completions come on their own topic: wait for them to be shown too
            shown = all(item["completion"] for item in page["items"])
            return page if complete and shown and "c-low" in reasons else None

        everything = await wait_until(queued, timeout=60, what="four queued completions")
        first = await _pending(fb, limit=3)
        second = await _pending(fb, limit=3, cursor=first["next_cursor"])
        refused = await fb.get("/v1/annotations", cursor="not-a-cursor")
        other = await _pending(fb, tenant="other")

    # c-down's reasons come from two topics, in either order
    assert [
        (item["completion_id"], item["priority"], sorted(item["reasons"]))
        for item in everything["items"]
    ] == [
        ("c-down", 0.0, ["low_score:groundedness", "negative_feedback"]),
        ("c-rating", 0.25, ["negative_feedback"]),
        ("c-low", 0.3, ["low_score:groundedness"]),
        ("c-fix", 1.0, ["correction"]),
    ]
    assert everything["next_cursor"] is None
    worst = everything["items"][0]
    assert worst["completion"]["output"] == "answer"
    assert [f["thumbs"] for f in worst["feedback"]] == ["down"]
    pages = [item["completion_id"] for item in first["items"] + second["items"]]
    assert pages == ["c-down", "c-rating", "c-low", "c-fix"]
    assert first["next_cursor"] is not None
    assert second["next_cursor"] is None
    assert refused.status_code == 422
    assert "next_cursor" in refused.json()["detail"]
    assert [item["completion_id"] for item in other["items"]] == ["o-down"]


async def test_reviewers_settle_queued_completions_once(
    service_settings: SettingsFactory,
) -> None:
    async with feedback_service(service_settings) as fb:
        ids = ("r-correct", "r-label", "r-dismiss", "r-approve")
        await fb.publish(*(submission(cid, "u1", thumbs=Thumbs.DOWN) for cid in ids))
        await wait_until(lambda: _count_pending(fb, 4), timeout=60, what="four queued completions")

        async def review(completion_id: str, tenant: str = "acme", **body: Any) -> Any:
            path = f"/v1/annotations/{completion_id}/review"
            return await fb.post(path, {"reviewer": "ana", **body}, tenant=tenant)

        corrected = await review("r-correct", action="correct", corrected_answer="Rotterdam.")
        repeated = await review("r-correct", action="correct", corrected_answer="Rotterdam.")
        conflict = await review("r-correct", action="approve")
        no_answer = await review("r-label", action="correct")
        labelled = await review("r-label", action="label", categories=["tone", "tone"])
        dismissed = await review("r-dismiss", action="dismiss")
        approved = await review("r-approve", action="approve", note="fine after all")
        missing = await review("r-unknown", action="approve")
        foreign = await review("r-approve", tenant="other", action="dismiss")
        pending = await _pending(fb)
        corrected_list = await _pending(fb, status="corrected")

    assert corrected.status_code == 200, corrected.text
    body = corrected.json()
    assert body["status"] == "corrected"
    assert body["review"]["corrected_answer"] == "Rotterdam."
    assert body["review"]["reviewer"] == "ana"
    assert repeated.status_code == 200
    assert repeated.json()["review"]["reviewed_at"] == body["review"]["reviewed_at"]
    assert conflict.status_code == 409
    assert "already reviewed (correct by ana" in conflict.json()["detail"]
    assert no_answer.status_code == 422
    assert "needs corrected_answer" in no_answer.text
    assert labelled.json()["status"] == "labelled"
    assert labelled.json()["review"]["categories"] == ["tone"]
    assert dismissed.json()["status"] == "dismissed"
    assert approved.json()["status"] == "approved"
    assert approved.json()["review"]["note"] == "fine after all"
    assert missing.status_code == 404
    assert "not in the annotation queue" in missing.json()["detail"]
    assert foreign.status_code == 404  # another tenant's entry does not exist for it
    assert pending["items"] == []
    assert [item["completion_id"] for item in corrected_list["items"]] == ["r-correct"]


async def _count_pending(fb: FeedbackStack, count: int) -> bool:
    return len((await _pending(fb))["items"]) == count
