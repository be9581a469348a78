"""The prompt registry over HTTP, against real MongoDB-protocol storage and Kafka."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from llmops.testing import SettingsFactory, read_topic
from llmops_prompts.app import create_app
from llmops_prompts.settings import PromptsSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

SPEC: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "You answer for {{ company }}."},
        {"role": "user", "content": "{{ question }}"},
    ],
    "variables": {
        "type": "object",
        "properties": {"company": {"type": "string"}, "question": {"type": "string"}},
        "required": ["company", "question"],
    },
    "model": "small-chat",
    "parameters": {"temperature": 0.2},
}


def _spec(**changes: Any) -> dict[str, Any]:
    return {**SPEC, **changes}


@pytest.fixture
async def api(service_settings: SettingsFactory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service_settings(PromptsSettings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://prompts") as client:
            yield client


async def _create(api: httpx.AsyncClient, name: str, spec: dict[str, Any]) -> httpx.Response:
    return await api.post(
        f"/v1/prompts/{name}/versions", json={"spec": spec, "author": "ana", "message": "edit"}
    )


async def test_versions_are_numbered_immutable_and_not_duplicated(api: httpx.AsyncClient) -> None:
    first = await _create(api, "support-answer", _spec())
    again = await _create(api, "support-answer", _spec())
    second = await _create(api, "support-answer", _spec(model="big-chat"))

    assert (first.status_code, first.json()["version"], first.json()["created"]) == (201, 1, True)
    assert (again.status_code, again.json()["version"], again.json()["created"]) == (200, 1, False)
    assert (second.status_code, second.json()["version"]) == (201, 2)
    v1 = (await api.get("/v1/prompts/support-answer/versions/1")).json()
    assert v1["spec"]["model"] == "small-chat"
    assert v1["author"] == "ana"
    assert (await api.put("/v1/prompts/support-answer/versions/1", json={})).status_code == 405
    detail = (await api.get("/v1/prompts/support-answer")).json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]


async def test_label_moves_and_rollback_keep_a_history(api: httpx.AsyncClient) -> None:
    await _create(api, "faq", _spec())
    await _create(api, "faq", _spec(model="big-chat"))

    await api.put("/v1/prompts/faq/labels/production", json={"version": 1, "actor": "ana"})
    moved = await api.put(
        "/v1/prompts/faq/labels/production",
        json={"version": 2, "actor": "bo", "reason": "better answers"},
    )
    rolled = await api.post(
        "/v1/prompts/faq/labels/production/rollback", json={"actor": "cy", "reason": "regression"}
    )

    assert moved.json()["split"]["arms"] == [{"version": 2, "weight": 100.0}]
    assert rolled.status_code == 200
    assert rolled.json()["split"]["arms"][0]["version"] == 1
    label = (await api.get("/v1/prompts/faq/labels/production")).json()
    assert (label["split"]["arms"][0]["version"], label["updated_by"]) == (1, "cy")
    moves = (await api.get("/v1/prompts/faq/labels/production/history")).json()["moves"]
    assert [(m["actor"], m["to_split"]["arms"][0]["version"]) for m in moves] == [
        ("ana", 1),
        ("bo", 2),
        ("cy", 1),
    ]
    assert moves[0]["from_split"] is None
    resolved = (await api.get("/v1/prompts/faq/resolve", params={"label": "production"})).json()
    assert (resolved["version"], resolved["spec"]["model"]) == (1, "small-chat")
    pinned = (await api.get("/v1/prompts/faq/resolve", params={"version": 2})).json()
    assert pinned["spec"]["model"] == "big-chat"
    assert moves[1]["reason"] == "better answers"
    assert moves[2]["reason"] == "rollback: regression"


async def test_concurrent_first_writes_of_a_prompt_and_a_label_all_succeed(
    api: httpx.AsyncClient,
) -> None:
    """Writers that create the same prompt or label at once (evaluation replicas seeding a
    rubric) race to insert one record; the slower ones update it instead of failing."""
    for round_ in range(5):
        name = f"seeded-{round_}"
        created = await asyncio.gather(*(_create(api, name, _spec()) for _ in range(8)))
        moved = await asyncio.gather(
            *(
                api.put(f"/v1/prompts/{name}/labels/production", json={"version": 1, "actor": a})
                for a in "abcdefgh"
            )
        )

        assert [r.status_code for r in created if r.status_code not in (200, 201)] == []
        assert [r.status_code for r in moved if r.status_code != 200] == [], moved[0].text
        detail = (await api.get(f"/v1/prompts/{name}")).json()
        assert detail["latest_version"] == 1
        assert detail["labels"]["production"]["arms"] == [{"version": 1, "weight": 100.0}]


async def test_render_reports_version_and_names_every_bad_variable(api: httpx.AsyncClient) -> None:
    await _create(api, "greet", _spec())
    await api.put("/v1/prompts/greet/labels/production", json={"version": 1, "actor": "ana"})

    ok = await api.post(
        "/v1/prompts/greet/render",
        json={"variables": {"company": "Acme", "question": "Hi?"}, "user_id": "u1"},
    )
    bad = await api.post("/v1/prompts/greet/render", json={"variables": {"company": 3}})

    assert ok.status_code == 200
    assert ok.json()["version"] == 1
    assert ok.json()["label"] == "production"
    assert ok.json()["messages"][0] == {"role": "system", "content": "You answer for Acme."}
    assert bad.status_code == 422
    problems = {p["variable"] for p in bad.json()["detail"]["problems"]}
    assert problems == {"company", "question"}


async def test_canary_split_over_the_api_is_sticky_and_reports_the_version(
    api: httpx.AsyncClient,
) -> None:
    await _create(api, "canary", _spec())
    await _create(api, "canary", _spec(model="big-chat"))
    split = {"arms": [{"version": 1, "weight": 80}, {"version": 2, "weight": 20}]}
    assert (
        await api.put("/v1/prompts/canary/labels/production", json={"split": split, "actor": "a"})
    ).status_code == 200

    async def version_for(user: str) -> int:
        body = {"variables": {"company": "A", "question": "q"}, "user_id": user}
        response = await api.post("/v1/prompts/canary/render", json=body)
        return int(response.json()["version"])

    versions = [await version_for(f"user-{n}") for n in range(500)]
    share = versions.count(2) / len(versions) * 100
    assert 14 <= share <= 26, share  # 20% +/- 6 points at n=500
    assert [await version_for(f"user-{n}") for n in range(50)] == versions[:50]


async def test_unsafe_templates_bad_names_and_archived_prompts_are_refused(
    api: httpx.AsyncClient,
) -> None:
    unsafe = _spec(messages=[{"role": "user", "content": "{{ ''.__class__.__mro__ }}"}])
    refused = await _create(api, "evil", unsafe)
    bad_name = await _create(api, "Not A Name", _spec())
    await _create(api, "old", _spec())
    archived = await api.post("/v1/prompts/old/archive", json={"actor": "ana"})
    after = await _create(api, "old", _spec(model="x"))
    missing = await api.get("/v1/prompts/nope")

    assert refused.status_code == 422
    reasons = refused.json()["detail"]["reasons"]
    assert "messages[0] line 1: access to '__class__' is not allowed" in reasons
    assert bad_name.status_code == 422
    assert archived.status_code == 200
    assert (after.status_code, after.json()["detail"]) == (409, "prompt 'old' is archived")
    assert missing.status_code == 404


async def test_diff_shows_template_and_parameter_changes(api: httpx.AsyncClient) -> None:
    await _create(api, "d", _spec())
    changed = [SPEC["messages"][0], {"role": "user", "content": "Q: {{ question }}"}]
    await _create(api, "d", _spec(messages=changed, parameters={"temperature": 0.7}))

    diff = (await api.get("/v1/prompts/d/diff", params={"from_version": 1, "to_version": 2})).json()

    assert "-{{ question }}" in diff["messages_diff"]
    assert "+Q: {{ question }}" in diff["messages_diff"]
    assert diff["changes"] == {"parameters": [{"temperature": 0.2}, {"temperature": 0.7}]}


async def test_every_version_and_label_move_is_published(
    api: httpx.AsyncClient, service_settings: SettingsFactory
) -> None:
    await _create(api, "evented", _spec())
    await api.put("/v1/prompts/evented/labels/staging", json={"version": 1, "actor": "ana"})

    settings = service_settings()
    records = await read_topic(
        settings.kafka_bootstrap_servers,
        f"{settings.kafka_topic_prefix}prompts.changed",
        count=2,
    )
    events = [json.loads(record.value) for record in records]
    assert [(e["subject"], e["data"]["change"]) for e in events] == [
        ("evented", "version_created"),
        ("evented", "label_moved"),
    ]
    assert events[1]["data"]["label"] == "staging"
    assert events[1]["data"]["version"] == 1
    assert events[1]["data"]["actor"] == "ana"
