"""The gateway in front of the inference service: a model registered there is servable through
the gateway with no route, streamed to the official client, priced from the registry, and the
inference service's own 4xx (unknown model, context too long) reach the client as they are.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from llmops.events.catalog import Topic
from llmops.testing import SettingsFactory, bearer, create_api_key, read_topic, serving
from llmops_gateway.app import create_app as create_gateway
from llmops_gateway.settings import GatewaySettings
from llmops_inference.app import create_app as create_inference
from llmops_inference.settings import InferenceSettings
from llmops_inference.toy_model import build_toy_chat_model

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

ADMIN_KEY = "sk-llmops-test-admin-inference-0123"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_chat_model(tmp_path_factory.mktemp("toy") / "model")


@pytest.fixture
async def gateway(
    service_settings: SettingsFactory, model_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, str, GatewaySettings]]:
    toy = {
        "name": "toy",
        "engine": "transformers",
        "source": str(model_dir),
        "stage": "production",
        "context_length": 256,
        "price_per_1k_prompt_tokens": 1.0,
        "price_per_1k_completion_tokens": 2.0,
    }
    inference_settings = service_settings(InferenceSettings, models=[toy], preload=["toy"])
    async with serving(create_inference(inference_settings)) as inference_url:
        settings = service_settings(
            GatewaySettings, admin_key=ADMIN_KEY, inference_url=f"{inference_url}/v1"
        )
        async with (
            serving(create_gateway(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as http,
        ):
            secret = await create_api_key(http, ADMIN_KEY, name="app", tenant="acme")
            http.headers.update(bearer(secret))
            yield http, secret, settings


async def test_a_registered_model_streams_through_the_gateway_and_is_priced(
    gateway: tuple[httpx.AsyncClient, str, GatewaySettings],
) -> None:
    http, secret, settings = gateway
    models = (await http.get("/v1/models")).json()
    assert "toy" in [card["id"] for card in models["data"]]

    base_url = str(http.base_url).rstrip("/") + "/v1"
    client = AsyncOpenAI(base_url=base_url, api_key=secret, max_retries=0)
    stream = await client.chat.completions.create(
        model="toy",
        messages=[{"role": "user", "content": "where is my invoice"}],
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert pieces
    assert usage is not None
    assert usage.completion_tokens == 8

    (record,) = await read_topic(
        settings.kafka_bootstrap_servers,
        f"{settings.kafka_topic_prefix}{Topic.LLM_COMPLETIONS}",
        count=1,
    )
    event = json.loads(record.value)["data"]
    assert event["served_model"].startswith("toy@127.0.0.1")
    assert event["usage"]["completion_tokens"] == 8
    prompt_tokens = event["usage"]["prompt_tokens"]
    assert event["cost_usd"] == pytest.approx((prompt_tokens * 1.0 + 8 * 2.0) / 1000)
    assert event["time_to_first_token_ms"] is not None


async def test_the_inference_services_4xx_reach_the_client(
    gateway: tuple[httpx.AsyncClient, str, GatewaySettings],
) -> None:
    http, _, _ = gateway

    async def chat(**body: Any) -> httpx.Response:
        return await http.post("/v1/chat/completions", json=body)

    unknown = await chat(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["error"]["message"]
    too_long = await chat(model="toy", messages=[{"role": "user", "content": "word " * 400}])
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "context_length_exceeded"
