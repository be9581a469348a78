"""`POST /v1/feedback` on the gateway: a chat answer, the user's feedback on it through the
gateway, stored and recorded by the feedback service; bad feedback refused with 422."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from feedback_stack import feedback_service

from llmops.events.catalog import CONTRACTS, Topic
from llmops.events.codec import EventCodec
from llmops.feedback import feedback_id_for
from llmops.llm.stub_server import StubBehaviour, build_app
from llmops.testing import (
    SettingsFactory,
    bearer,
    create_api_key,
    headers_of,
    read_topic_until,
    serving,
)
from llmops_gateway.app import create_app as create_gateway
from llmops_gateway.settings import GatewaySettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

ADMIN_KEY = "sk-llmops-test-admin-0123456789abcdef"


@asynccontextmanager
async def gateway(
    service_settings: SettingsFactory,
) -> AsyncIterator[tuple[httpx.AsyncClient, GatewaySettings]]:
    async with serving(build_app(StubBehaviour())) as stub_url:
        routes = {"chat": {"backends": [{"url": f"{stub_url}/v1", "model": "stub"}]}}
        settings = service_settings(
            GatewaySettings, admin_key=ADMIN_KEY, model_routes={"routes": routes}, inference_url=""
        )
        async with (
            serving(create_gateway(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield http, settings


async def _submissions(settings: Any, done: Any) -> list[Any]:
    codec = EventCodec(CONTRACTS[Topic.FEEDBACK_EVENTS], settings.event_wire_format)
    records = await read_topic_until(
        settings.kafka_bootstrap_servers,
        f"{settings.kafka_topic_prefix}{Topic.FEEDBACK_EVENTS}",
        lambda records: done([codec.decode(r.value, headers_of(r)) for r in records]),
    )
    return [codec.decode(r.value, headers_of(r)) for r in records]


async def test_feedback_through_the_gateway_is_stored_and_recorded_with_its_completion(
    service_settings: SettingsFactory,
) -> None:
    async with gateway(service_settings) as (gw, _), feedback_service(service_settings) as fb:
        key = bearer(await create_api_key(gw, ADMIN_KEY, name="app", tenant="acme"))
        key_id = (await gw.get("/v1/me", headers=key)).json()["key_id"]
        chat = await gw.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "Where is it?"}]},
            headers=key,
        )
        completion_id = chat.json()["id"]
        await fb.stored(completion_id)

        body = {
            "completion_id": completion_id,
            "thumbs": "down",
            "rating": 2,
            "categories": ["outdated", "outdated", " wrong "],
            "comment": "It is in Rotterdam.",
            "corrected_answer": "Your order is in Rotterdam.",
        }
        accepted = await gw.post("/v1/feedback", json=body, headers=key)
        named = await gw.post(
            "/v1/feedback",
            json={"completion_id": completion_id, "user_id": "end-user-7", "thumbs": "up"},
            headers=key,
        )
        recorded = await fb.recorded_until(lambda events: len(events) >= 2)
        submitted = await _submissions(fb.settings, lambda events: len(events) >= 2)
        stored = await fb.feedback_of(completion_id)
        entry = (await fb.get(f"/v1/annotations/{completion_id}")).json()
        completion = (await fb.get(f"/v1/completions/{completion_id}")).json()

    assert accepted.status_code == 202, accepted.text
    answer = accepted.json()
    assert answer == {
        "feedback_id": feedback_id_for("acme", completion_id, key_id),
        "completion_id": completion_id,
        "user_id": key_id,  # no user_id given: the key's
        "submission_id": submitted[0].id,
    }
    request_trace = accepted.headers["traceparent"].split("-")[1]
    assert submitted[0].data.trace_id == request_trace  # defaulted to the request's trace
    assert submitted[0].data.categories == ["outdated", "wrong"]
    assert submitted[0].tenant == "acme"
    assert named.json()["feedback_id"] == feedback_id_for("acme", completion_id, "end-user-7")

    mine, theirs = recorded
    assert (mine.data.user_id, mine.data.created, mine.data.score) == (key_id, True, 0.125)
    assert mine.data.has_correction
    assert mine.data.feedback_id == answer["feedback_id"]
    assert (mine.data.served_model, mine.data.api_key_id, mine.data.prompt) == (
        completion["served_model"],
        key_id,
        None,
    )
    assert mine.data.trace_id == completion["trace_id"]  # the completion's trace
    assert (theirs.data.user_id, theirs.data.score) == ("end-user-7", 1.0)

    assert [(r["user_id"], r["corrected_answer"]) for r in stored] == [
        (key_id, "Your order is in Rotterdam."),
        ("end-user-7", None),
    ]
    assert sorted(entry["reasons"]) == ["correction", "negative_feedback"]
    assert entry["completion"]["messages"] == [{"role": "user", "content": "Where is it?"}]


async def test_feedback_that_does_not_fit_is_refused_with_what_to_fix(
    service_settings: SettingsFactory,
) -> None:
    async with gateway(service_settings) as (gw, settings):
        key = bearer(await create_api_key(gw, ADMIN_KEY, name="app", tenant="acme"))
        analyst = bearer(await create_api_key(gw, ADMIN_KEY, name="bi", role="analyst"))

        async def send(body: Any, headers: dict[str, str] = key) -> httpx.Response:
            content = body if isinstance(body, str) else json.dumps(body)
            headers = {**headers, "Content-Type": "application/json"}
            return await gw.post("/v1/feedback", content=content, headers=headers)

        refusals = {
            "empty": await send({"completion_id": "chatcmpl-1"}),
            "blank comment": await send({"completion_id": "chatcmpl-1", "comment": "  "}),
            "rating": await send({"completion_id": "chatcmpl-1", "rating": 6}),
            "thumbs": await send({"completion_id": "chatcmpl-1", "thumbs": "sideways"}),
            "typo": await send({"completion_id": "chatcmpl-1", "thumb": "up"}),
            "blank answer": await send({"completion_id": "chatcmpl-1", "corrected_answer": " "}),
            "categories": await send({"completion_id": "chatcmpl-1", "categories": ["x"] * 11}),
            "id": await send({"completion_id": "../etc", "thumbs": "up"}),
            "json": await send('{"completion_id": '),
        }
        too_large = await send({"completion_id": "chatcmpl-1", "comment": "x" * 300_000})
        anonymous = await send({"completion_id": "chatcmpl-1", "thumbs": "up"}, headers={})
        reader = await send({"completion_id": "chatcmpl-1", "thumbs": "up"}, headers=analyst)
        valid = await send({"completion_id": "chatcmpl-1", "thumbs": "up"})
        openapi = (await gw.get("/openapi.json")).json()
        # the outbox keeps order: had a refused one been published, it would come first
        published = await _submissions(settings, lambda events: len(events) >= 1)

    messages = {}
    for name, response in refusals.items():
        assert response.status_code == 422, (name, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_feedback"
        messages[name] = error["message"]
    assert "at least one of thumbs (up/down), rating (1-5), categories" in messages["empty"]
    assert messages["empty"] == messages["blank comment"]
    assert "rating: Input should be less than or equal to 5" in messages["rating"]
    assert "thumbs: Input should be 'up' or 'down'" in messages["thumbs"]
    assert "thumb: Extra inputs are not permitted" in messages["typo"]
    assert "corrected_answer is blank" in messages["blank answer"]
    assert "categories: List should have at most 10 items" in messages["categories"]
    assert "completion_id: String should match pattern" in messages["id"]
    assert "JSON" in messages["json"]
    assert too_large.status_code == 413
    assert anonymous.status_code == 401
    assert reader.status_code == 403
    assert valid.status_code == 202
    assert [event.id for event in published] == [valid.json()["submission_id"]]

    operation = openapi["paths"]["/v1/feedback"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FeedbackRequest"
    }
    assert set(operation["responses"]) >= {"202", "413", "422"}
