"""The gateway renders prompts from its cache and never serves a moved label stale once the
`prompts.changed` event has been delivered."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from llmops.testing import SettingsFactory, bearer, create_api_key, serving, wait_until
from llmops_gateway.app import create_app as create_gateway
from llmops_gateway.settings import GatewaySettings
from llmops_prompts.app import create_app as create_prompts
from llmops_prompts.settings import PromptsSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

VARIABLES = {"question": "Where is my invoice?"}
ADMIN_KEY = "sk-llmops-test-admin-0123456789abcdef"


def _spec(greeting: str) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": greeting + " {{ question }}"}],
        "variables": {"type": "object", "required": ["question"]},
    }


def _counter(metrics: str, pattern: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("llmops_") and re.search(pattern, line):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_label_move_reaches_the_gateway_cache_through_the_event(
    service_settings: SettingsFactory,
) -> None:
    async with serving(create_prompts(service_settings(PromptsSettings))) as prompts_url:
        gateway_settings = service_settings(
            GatewaySettings, prompts_url=prompts_url, admin_key=ADMIN_KEY
        )
        async with (
            httpx.AsyncClient(base_url=prompts_url) as registry,
            serving(create_gateway(gateway_settings)) as gateway_url,
            httpx.AsyncClient(base_url=gateway_url) as gateway,
        ):
            gateway.headers.update(bearer(await create_api_key(gateway, ADMIN_KEY, role="analyst")))

            async def create(greeting: str) -> None:
                body = {"spec": _spec(greeting), "author": "ana", "message": ""}
                response = await registry.post("/v1/prompts/support/versions", json=body)
                assert response.status_code == 201, response.text

            async def point_production_at(version: int) -> None:
                body = {"version": version, "actor": "ana"}
                response = await registry.put("/v1/prompts/support/labels/production", json=body)
                assert response.status_code == 200, response.text

            async def render() -> dict[str, Any]:
                response = await gateway.post(
                    "/v1/prompts/support/render", json={"variables": VARIABLES}
                )
                assert response.status_code == 200, response.text
                body: dict[str, Any] = response.json()
                return body

            async def events_handled() -> float:
                metrics = (await gateway.get("/metrics")).text
                return _counter(metrics, r"events_consumed_total\{.*prompts\.changed")

            async def label_lookups() -> float:
                metrics = (await registry.get("/metrics")).text
                label_route = r'method="GET",route="/v1/prompts/\{name\}/labels/\{label\}"'
                return _counter(metrics, r"requests_total\{" + label_route)

            await create("Hello.")
            await point_production_at(1)
            await wait_until(lambda: _at_least(events_handled, 2), what="first two events")

            first = [await render() for _ in range(5)]
            assert {(r["version"], r["messages"][0]["content"]) for r in first} == {
                (1, "Hello. Where is my invoice?")
            }
            assert await label_lookups() == 1, "renders after the first come from the cache"

            await create("Hi there.")
            await point_production_at(2)
            await wait_until(lambda: _at_least(events_handled, 4), what="the label move event")

            after = await render()
            assert (after["version"], after["label"]) == (2, "production")
            assert after["messages"][0]["content"] == "Hi there. Where is my invoice?"

            unknown = await gateway.post("/v1/prompts/nope/render", json={"variables": {}})
            bad = await gateway.post("/v1/prompts/support/render", json={"variables": {}})
            assert unknown.status_code == 404
            assert bad.status_code == 400
            assert bad.json()["error"]["param"] == "variables.question"


async def _at_least(probe: Callable[[], Any], expected: float) -> bool:
    return bool(await probe() >= expected)
