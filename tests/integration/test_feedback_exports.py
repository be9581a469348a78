"""SFT and preference exports from real feedback and reviews: exactly the expected lines,
de-duplicated, and filtered by tenant, time, prompt version and model."""

from __future__ import annotations

from typing import Any

import pytest
from feedback_stack import SYSTEM, FeedbackStack, completion, day, feedback_service, submission

from llmops.events.catalog import Thumbs
from llmops.testing import SettingsFactory, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]


def _prompt(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def _sft(line: dict[str, Any]) -> tuple[str, str, str, str]:
    """(completion, question, answer, source) of an SFT line."""
    *prompt, answer = line["messages"]
    assert prompt == _prompt(prompt[-1]["content"])
    assert answer["role"] == "assistant"
    meta = line["metadata"]
    return meta["completion_id"], prompt[-1]["content"], answer["content"], meta["source"]


def _pair(line: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """(completion, question, chosen, rejected, chosen source) of a preference line."""
    assert set(line) == {"prompt", "chosen", "rejected", "metadata"}
    question = line["prompt"][-1]["content"]
    assert line["prompt"] == _prompt(question)
    meta = line["metadata"]
    return meta["completion_id"], question, line["chosen"], line["rejected"], meta["chosen_source"]


async def _seed(fb: FeedbackStack) -> None:
    """Completions, feedback and reviews; each comment says what it should export."""
    await fb.publish(
        # user correction: SFT and a pair
        completion("c1", question="Where is my order?", output="On Mars.", at=day(1)),
        # reviewer correction over a thumbs down: SFT and a pair
        completion("c2", question="When do you ship?", output="Never.", at=day(2)),
        # thumbs down, then the reviewer approves the answer: SFT (approval), no pair
        completion("c3", question="Do you ship to Spain?", output="Yes, in 3 days.", at=day(3)),
        # a rating of 1 with no correction; c5 answers the same prompt and is liked: a pair
        completion("c4", question="Can I return shoes?", output="No.", at=day(4)),
        completion("c5", question="Can I return shoes?", output="Yes, within 30 days.", at=day(5)),
        # the same prompt, answer and correction as c1: a duplicate line of each kind
        completion("c6", question="Where is my order?", output="On Mars.", at=day(6)),
        # prompt version 2 on another model
        completion(
            "c7", question="Gift wrap?", output="What?", at=day(7), prompt_version=2, model="m2"
        ),
        # corrected by a user but dismissed by the reviewer: nothing
        completion("c8", question="Spam?", output="Spam.", at=day(8)),
        # no feedback: nothing
        completion("c9", question="Hello?", output="Hi.", at=day(9)),
        # corrected to the same answer: SFT, but no pair (chosen would equal rejected)
        completion("c10", question="Open on Sunday?", output="No.", at=day(10)),
        # another tenant's
        completion("o1", question="Where is my order?", output="Lost.", at=day(1), tenant="other"),
    )
    down: dict[str, Any] = {"thumbs": Thumbs.DOWN}
    await fb.publish(
        submission("c1", "u1", corrected_answer="In Rotterdam.", **down),
        submission("c2", "u1", **down),
        submission("c3", "u1", **down),
        submission("c4", "u1", rating=1),
        submission("c5", "u2", thumbs=Thumbs.UP),
        submission("c6", "u3", corrected_answer="In Rotterdam.", **down),
        submission("c7", "u1", corrected_answer="Yes, for 2 euros.", **down),
        submission("c8", "u1", corrected_answer="Buy now!!!", **down),
        submission("c9-missing", "u1", **down),  # its completion never came
        submission("c10", "u1", corrected_answer=" No. ", **down),
        submission("o1", "u1", corrected_answer="In Utrecht.", tenant="other", **down),
    )
    ids = [f"c{n}" for n in range(1, 11)]
    await fb.stored(*ids)
    await fb.stored("o1", tenant="other")

    async def all_feedback() -> bool:
        for completion_id in ids:
            if completion_id != "c9" and not await fb.feedback_of(completion_id):
                return False
        return True

    await wait_until(all_feedback, timeout=60, what="the feedback of every completion")
    reviews = {
        "c2": {"action": "correct", "corrected_answer": "Within two working days."},
        "c3": {"action": "approve"},
        "c8": {"action": "dismiss"},
    }
    for completion_id, review in reviews.items():
        path = f"/v1/annotations/{completion_id}/review"
        response = await fb.post(path, {"reviewer": "rev", **review})
        assert response.status_code == 200, response.text


async def test_exports_hold_exactly_the_expected_lines_once_each_and_honour_filters(
    service_settings: SettingsFactory,
) -> None:
    async with feedback_service(service_settings) as fb:
        await _seed(fb)
        sft = await fb.export("sft")
        sft_liked = await fb.export("sft", include_liked="true")
        pairs = await fb.export("preferences")
        window = {"since": day(2).isoformat(), "until": day(7).isoformat()}
        sft_window = await fb.export("sft", **window)
        pairs_window = await fb.export("preferences", **window)
        v2 = await fb.export("sft", prompt_name="support", prompt_version=2)
        v1_pairs = await fb.export("preferences", prompt_version=1)
        m2 = await fb.export("preferences", model="m2")
        other = await fb.export("sft", tenant="other")
        nobody = await fb.export("preferences", tenant="nobody")

    assert [_sft(line) for line in sft] == [
        ("c1", "Where is my order?", "In Rotterdam.", "user_correction"),
        ("c2", "When do you ship?", "Within two working days.", "reviewer_correction"),
        ("c3", "Do you ship to Spain?", "Yes, in 3 days.", "reviewer_approval"),
        ("c7", "Gift wrap?", "Yes, for 2 euros.", "user_correction"),
        ("c10", "Open on Sunday?", " No. ", "user_correction"),
    ]
    first = sft[0]["metadata"]
    assert (first["served_model"], first["prompt"], first["time"]) == (
        "m1",
        "support@1",
        day(1).isoformat(),
    )
    assert [_sft(line)[0] for line in sft_liked] == ["c1", "c2", "c3", "c5", "c7", "c10"]
    assert _sft(sft_liked[3])[2:] == ("Yes, within 30 days.", "liked")

    assert [_pair(line) for line in pairs] == [
        ("c1", "Where is my order?", "In Rotterdam.", "On Mars.", "user_correction"),
        ("c2", "When do you ship?", "Within two working days.", "Never.", "reviewer_correction"),
        ("c4", "Can I return shoes?", "Yes, within 30 days.", "No.", "liked"),
        ("c7", "Gift wrap?", "Yes, for 2 euros.", "What?", "user_correction"),
    ]
    assert pairs[2]["metadata"]["chosen_from"] == "c5"

    # c1 is outside the window, so c6 (its duplicate) is exported in its place
    assert [_sft(line)[0] for line in sft_window] == ["c2", "c3", "c6"]
    assert [_pair(line)[0] for line in pairs_window] == ["c2", "c4", "c6"]
    assert [_sft(line)[0] for line in v2] == ["c7"]
    assert [_pair(line)[0] for line in v1_pairs] == ["c1", "c2", "c4"]
    assert [_pair(line)[0] for line in m2] == ["c7"]
    assert [_sft(line)[:3] for line in other] == [("o1", "Where is my order?", "In Utrecht.")]
    assert nobody == []
