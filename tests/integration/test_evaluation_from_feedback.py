"""Evaluation datasets from human feedback: the feedback service's corrected and approved
answers become references, through the evaluation API and `llmops eval from-feedback`,
filtered like the export; nothing matching is a 422, a failing feedback service a 502."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from feedback_stack import SYSTEM, FeedbackStack, completion, day, feedback_service, submission

from llmops.cli.main import main as cli
from llmops.events.catalog import ChatMessage, ChatRole, Thumbs
from llmops.tenancy import TENANT_HEADER
from llmops.testing import SettingsFactory, serving, wait_until
from llmops_evaluation.app import create_app as create_evaluation
from llmops_evaluation.settings import EvaluationSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

FROM_FEEDBACK = "/v1/datasets/{}/versions/from-feedback"


@asynccontextmanager
async def evaluation_service(
    service_settings: SettingsFactory, feedback_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The evaluation service alone (no runs here), reading feedback from `feedback_url`."""
    settings = service_settings(
        EvaluationSettings, feedback_url=feedback_url, online_sample_rate=0.0
    )
    async with (
        serving(create_evaluation(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60, headers={TENANT_HEADER: "acme"}) as http,
    ):
        yield http, url


def _item(
    completion_id: str,
    turns: list[dict[str, str]],
    reference: str,
    reference_source: str,
    *,
    prompt: str = "support@1",
    model: str = "m1",
) -> dict[str, Any]:
    """A dataset item as the export route prints it (defaults left out)."""
    return {
        "item_id": completion_id,
        "messages": turns,
        "variables": {"question": turns[-1]["content"]},
        "reference": reference,
        "metadata": {
            "completion_id": completion_id,
            "source": "feedback",
            "reference_source": reference_source,
            "served_model": model,
            "prompt": prompt,
            "trace_id": hashlib.sha256(completion_id.encode()).hexdigest()[:32],
        },
    }


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


CONVERSATION = [
    _user("Hi, I ordered shoes."),
    {"role": "assistant", "content": "Happy to help. What do you need?"},
    _user("Where is my order?"),
]
C1 = _item("c1", CONVERSATION, "In Rotterdam.", "user_correction")
C2 = _item("c2", [_user("When do you ship?")], "Within two working days.", "reviewer_correction")
C3 = _item("c3", [_user("Do you ship to Spain?")], "Yes, in 3 days.", "reviewer_approval")
C4 = _item("c4", [_user("Can I return shoes?")], "Yes, within 30 days.", "liked")
C6 = _item(
    "c6",
    [_user("Gift wrap?")],
    "Yes, for 2 euros.",
    "user_correction",
    prompt="support@2",
    model="m2",
)


async def _seed(fb: FeedbackStack) -> None:
    """Completions with feedback and reviews; each comment says whether it is a reference."""
    multi_turn = completion("c1", question="Where is my order?", output="On Mars.", at=day(1))
    messages = [ChatMessage(role=ChatRole.SYSTEM, content=SYSTEM)] + [
        ChatMessage(role=ChatRole(turn["role"]), content=turn["content"]) for turn in CONVERSATION
    ]
    multi_turn = multi_turn.model_copy(
        update={"data": multi_turn.data.model_copy(update={"messages": messages})}
    )
    await fb.publish(
        # a multi-turn conversation a user corrected: the correction
        multi_turn,
        # thumbs down, corrected by a reviewer: the reviewer's correction
        completion("c2", question="When do you ship?", output="Never.", at=day(2)),
        # thumbs down, then approved by a reviewer: the answer itself
        completion("c3", question="Do you ship to Spain?", output="Yes, in 3 days.", at=day(3)),
        # thumbs up only: not a reference unless liked answers are asked for
        completion("c4", question="Can I return shoes?", output="Yes, within 30 days.", at=day(4)),
        # thumbs down without a correction: never (nothing says what is right)
        completion("c5", question="Open on Sunday?", output="No.", at=day(5)),
        # prompt version 2 on model m2, corrected by a user
        completion(
            "c6", question="Gift wrap?", output="What?", at=day(6), prompt_version=2, model="m2"
        ),
        # corrected by a user but dismissed by the reviewer: never
        completion("c7", question="Spam?", output="Spam.", at=day(7)),
        # another tenant's correction
        completion("o1", question="Where is my order?", output="Lost.", at=day(1), tenant="other"),
    )
    down: dict[str, Any] = {"thumbs": Thumbs.DOWN}
    await fb.publish(
        submission("c1", "u1", corrected_answer="In Rotterdam.", **down),
        submission("c2", "u1", **down),
        submission("c3", "u1", **down),
        submission("c4", "u1", thumbs=Thumbs.UP),
        submission("c5", "u1", **down),
        submission("c6", "u1", corrected_answer="Yes, for 2 euros.", **down),
        submission("c7", "u1", corrected_answer="Buy now!!!", **down),
        submission("o1", "u1", corrected_answer="In Utrecht.", tenant="other", **down),
    )
    ids = [f"c{n}" for n in range(1, 8)]
    await fb.stored(*ids)
    await fb.stored("o1", tenant="other")

    async def all_feedback() -> bool:
        for completion_id in ids:
            if not await fb.feedback_of(completion_id):
                return False
        return bool(await fb.feedback_of("o1", tenant="other"))

    await wait_until(all_feedback, timeout=60, what="the feedback of every completion")
    reviews = {
        "c2": {"action": "correct", "corrected_answer": "Within two working days."},
        "c3": {"action": "approve"},
        "c7": {"action": "dismiss"},
    }
    for completion_id, review in reviews.items():
        response = await fb.post(
            f"/v1/annotations/{completion_id}/review", {"reviewer": "rev", **review}
        )
        assert response.status_code == 200, response.text


async def _items(ev: httpx.AsyncClient, name: str, **params: Any) -> list[dict[str, Any]]:
    response = await ev.get(f"/v1/datasets/{name}/export", params=params)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


async def test_corrected_and_approved_answers_become_references_by_api_and_cli(
    service_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with AsyncExitStack() as feedback_running:
        fb = await feedback_running.enter_async_context(feedback_service(service_settings))
        async with evaluation_service(service_settings, fb.url) as (ev, ev_url):
            await _seed(fb)

            async def from_feedback(name: str, tenant: str = "acme", **body: Any) -> httpx.Response:
                return await ev.post(
                    FROM_FEEDBACK.format(name), json=body, headers={TENANT_HEADER: tenant}
                )

            created = await from_feedback("corrections", description="from reviews")
            liked = await from_feedback("corrections", filter={"include_liked": True})
            window = await from_feedback(
                "window",
                filter={"since": day(2).isoformat(), "until": day(6).isoformat()},
            )
            version_2 = await from_feedback(
                "v2", filter={"prompt_name": "support", "prompt_version": 2}
            )
            model_1 = await from_feedback("m1", filter={"model": "m1", "limit": 2})
            other = await from_feedback("corrections", tenant="other")
            empty = await from_feedback("nothing", filter={"model": "m9"})
            tags = await from_feedback("nothing", filter={"tags": ["vip"]})
            summary = (await ev.get("/v1/datasets/corrections")).json()
            versions = {
                "corrections@1": await _items(ev, "corrections", version=1),
                "corrections@2": await _items(ev, "corrections", version=2),
                "window": await _items(ev, "window"),
                "v2": await _items(ev, "v2"),
                "m1": await _items(ev, "m1"),
            }
            other_items = await ev.get(
                "/v1/datasets/corrections/export", headers={TENANT_HEADER: "other"}
            )
            nothing = await ev.get("/v1/datasets/nothing")

            def eval_cli(*argv: str) -> int:
                return cli(["eval", *argv, "--url", ev_url, "--tenant", "acme"])

            capsys.readouterr()
            by_cli = await asyncio.to_thread(
                eval_cli, "from-feedback", "cli", "--prompt", "support@2", "--model", "m2"
            )
            by_cli_out = capsys.readouterr().out
            by_cli_window = await asyncio.to_thread(
                eval_cli,
                "from-feedback",
                "cli",
                "--since",
                day(3).isoformat(),
                "--until",
                day(5).isoformat(),
                "--include-liked",
            )
            by_cli_window_out = capsys.readouterr().out
            cli_empty = await asyncio.to_thread(
                eval_cli, "from-feedback", "cli", "--prompt", "support:9"
            )
            cli_empty_err = capsys.readouterr().err
            exported = await asyncio.to_thread(eval_cli, "export", "cli@1")
            cli_v1 = capsys.readouterr().out
            await asyncio.to_thread(eval_cli, "export", "cli@2")
            cli_v2 = capsys.readouterr().out
            cli_versions = (await ev.get("/v1/datasets/cli")).json()["latest_version"]

            await feedback_running.aclose()  # the feedback service goes down, evaluation stays
            down = await ev.post(FROM_FEEDBACK.format("down"), json={})
            down_cli = await asyncio.to_thread(eval_cli, "from-feedback", "down")
            down_cli_err = capsys.readouterr().err
            down_stored = await ev.get("/v1/datasets/down")

    assert created.status_code == 201, created.text
    version = created.json()
    assert {k: version[k] for k in ("name", "version", "items", "source", "description")} == {
        "name": "corrections",
        "version": 1,
        "items": 4,
        "source": "feedback",
        "description": "from reviews",
    }
    assert version["origin"] == {"limit": "1000", "include_liked": "False"}
    # c4 (thumbs up only), c5 (no correction), c7 (dismissed) and o1 (another tenant) are out
    assert versions["corrections@1"] == [C1, C2, C3, C6]
    # asked for, an answer users liked is a reference too; a new, immutable version
    assert (liked.status_code, liked.json()["version"]) == (201, 2)
    assert versions["corrections@2"] == [C1, C2, C3, C4, C6]
    assert [v["version"] for v in summary["versions"]] == [2, 1]

    assert window.status_code == 201, window.text
    assert window.json()["origin"]["since"] == "2025-01-02T12:00:00Z"
    assert versions["window"] == [C2, C3]
    assert version_2.status_code == 201, version_2.text
    assert versions["v2"] == [C6]
    assert model_1.status_code == 201, model_1.text
    assert versions["m1"] == [C1, C2]  # the oldest two of m1's

    assert other.status_code == 201, other.text
    assert other.json()["version"] == 1  # each tenant its own datasets
    (other_item,) = [json.loads(line) for line in other_items.text.splitlines()]
    assert (other_item["item_id"], other_item["reference"]) == ("o1", "In Utrecht.")

    assert empty.status_code == 422, empty.text
    assert empty.json()["detail"] == (
        "no corrected or approved answer in the feedback service matches the filter"
    )
    assert tags.status_code == 422, tags.text  # the export cannot filter by tags: refused
    assert "tags" in tags.text
    assert nothing.status_code == 404  # neither stored anything

    assert by_cli == 0, by_cli_out
    assert by_cli_out.strip() == "cli@1: 1 item(s)"
    assert by_cli_window == 0, by_cli_window_out
    assert by_cli_window_out.strip() == "cli@2: 2 item(s)"
    assert cli_empty == 2
    assert "no corrected or approved answer in the feedback service matches" in cli_empty_err
    assert exported == 0
    assert [json.loads(line) for line in cli_v1.splitlines()] == [C6]
    assert [json.loads(line) for line in cli_v2.splitlines()] == [C3, C4]
    assert cli_versions == 2  # the empty selection added no version

    assert down.status_code == 502, down.text
    assert f"the feedback service at {fb.url} is unreachable" in down.json()["detail"]
    assert down_cli == 2
    assert "(502)" in down_cli_err
    assert "unreachable" in down_cli_err
    assert down_stored.status_code == 404


def _failing_feedback(body: str, status: int) -> FastAPI:
    """A feedback service whose SFT export answers `body` with `status`."""
    app = FastAPI()

    @app.get("/v1/exports/sft")
    async def export_sft() -> PlainTextResponse:
        return PlainTextResponse(body, status_code=status, media_type="application/x-ndjson")

    return app


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ("database unavailable", 503, "the feedback service answered 503 to its SFT export: "),
        ('{"messages": [', 200, "line 1 of the feedback service's SFT export is not usable"),
    ],
)
async def test_a_failing_feedback_service_is_a_502_with_its_reason_and_stores_nothing(
    service_settings: SettingsFactory, body: str, status: int, reason: str
) -> None:
    async with (
        serving(_failing_feedback(body, status)) as feedback_url,
        evaluation_service(service_settings, feedback_url) as (ev, _),
    ):
        response = await ev.post(FROM_FEEDBACK.format("broken"), json={})
        stored = await ev.get("/v1/datasets/broken")

    assert response.status_code == 502, response.text
    assert response.json()["detail"].startswith(reason)
    if status != 200:
        assert response.json()["detail"].endswith(body)
    assert stored.status_code == 404
