"""The inference service over real HTTP, Kafka and FerretDB, serving a tiny model built here.

The official `openai` client reads its streams; every malformed request gets an OpenAI
error body with a 4xx; a client that leaves mid-stream frees the engine; the registry
controls what is served; a remote model routes to another inference service.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from prometheus_client.parser import text_string_to_metric_families

from llmops.testing import SettingsFactory, serving, wait_until
from llmops_inference.app import create_app
from llmops_inference.settings import InferenceSettings
from llmops_inference.toy_model import build_toy_chat_model

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

GREEDY: dict[str, Any] = {"temperature": 0, "extra_body": {"ignore_eos": True}}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_chat_model(tmp_path_factory.mktemp("toy") / "model")


def registration(name: str, model_dir: Path, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "engine": "transformers",
        "source": str(model_dir),
        "stage": "production",
        "price_per_1k_prompt_tokens": 0.1,
        "price_per_1k_completion_tokens": 0.2,
        **fields,
    }


@pytest.fixture
async def inference(service_settings: SettingsFactory, model_dir: Path) -> AsyncIterator[str]:
    settings = service_settings(
        InferenceSettings,
        models=[
            registration("toy", model_dir),
            registration("toy-solo", model_dir, options={"max_batch_size": 1}),
        ],
        max_request_bytes=64 * 1024,
        preload=["toy"],
    )
    async with serving(create_app(settings)) as url:
        yield url


def chat(model: str = "toy", content: str = "where is my order", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def test_the_openai_client_streams_and_reads_whole_answers(inference: str) -> None:
    client = AsyncOpenAI(base_url=f"{inference}/v1", api_key="unused")
    messages: Any = [{"role": "user", "content": "can you help me with my invoice"}]

    whole = await client.chat.completions.create(
        model="toy", messages=messages, max_tokens=10, **GREEDY
    )
    stream = await client.chat.completions.create(
        model="toy",
        messages=messages,
        max_tokens=10,
        stream=True,
        stream_options={"include_usage": True},
        **GREEDY,
    )
    chunks = [chunk async for chunk in stream]

    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert whole.choices[0].message.content == content
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None
    assert (whole.usage.completion_tokens, whole.usage.total_tokens) == (
        10,
        whole.usage.prompt_tokens + 10,
    )
    assert whole.id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == whole.usage
    await client.close()

    async with httpx.AsyncClient(base_url=inference) as http:
        metrics = (await http.get("/metrics")).text
    assert metric(metrics, "llmops_inference_generated_tokens_total", model="toy") == 20
    assert metric(metrics, "llmops_inference_time_to_first_token_seconds_count", model="toy") == 2
    assert metric(metrics, "llmops_inference_inter_token_latency_seconds_count", model="toy") >= 10
    assert metric(metrics, "llmops_inference_requests_total", model="toy", outcome="ok") == 2
    assert "llmops_inference_queue_depth{" in metrics
    assert metric(metrics, "llmops_inference_queue_depth", model="toy") == 0


async def test_concurrent_requests_share_batches_and_match_their_solo_answers(
    inference: str,
) -> None:
    questions = ["hello", "where is my order now", "thanks", "my card was charged twice"]
    async with httpx.AsyncClient(base_url=inference, timeout=60) as http:

        async def ask(question: str) -> str:
            body = chat(content=question, max_tokens=12, temperature=0, ignore_eos=True)
            response = await http.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text
            return str(response.json()["choices"][0]["message"]["content"])

        alone = [await ask(q) for q in questions]
        together = await asyncio.gather(*(ask(q) for q in questions))
    assert together == alone


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (chat(model="no-such-model"), 404, "model_not_found"),
        (chat(content="hello " * 600), 400, "context_length_exceeded"),
        (chat(max_tokens=600), 400, "context_length_exceeded"),
        (b'{"model": "toy", "messages": [', 400, "invalid_json"),
        (
            b'{"model": "toy", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
            400,
            "invalid_encoding",
        ),
        (chat(content="x " * 40_000), 413, "request_too_large"),
        (
            {"model": "toy", "messages": [{"role": "wizard", "content": "hi"}]},
            400,
            "invalid_request",
        ),
        ({"model": "toy"}, 400, "invalid_request"),
        (chat(n=2), 400, "invalid_request"),
        (chat(temperature=7), 400, "invalid_request"),
        (
            chat(tools=[{"type": "function", "function": {"name": "f"}}]),
            400,
            "unsupported_parameter",
        ),
        (chat(rag={"collection": "docs"}), 400, "unsupported_parameter"),
        ([1, 2, 3], 400, "invalid_request"),
    ],
    ids=[
        "unknown-model",
        "prompt-over-context",
        "completion-over-context",
        "invalid-json",
        "invalid-utf8",
        "oversized",
        "bad-role",
        "no-messages",
        "n-2",
        "temperature",
        "tools",
        "gateway-extension",
        "not-an-object",
    ],
)
async def test_bad_requests_get_a_4xx_openai_error(
    inference: str, body: Any, status: int, code: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(base_url=inference) as http:
        for stream in (False, True):
            if not isinstance(body, bytes) and isinstance(body, dict):
                content = json.dumps({**body, "stream": stream}).encode()
            response = await http.post(
                "/v1/chat/completions",
                content=content,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == status, response.text
            error = response.json()["error"]
            assert error["code"] == code
            assert error["message"]
            assert error["type"] in {"invalid_request_error", "not_found_error"}


async def test_a_client_leaving_mid_stream_cancels_the_generation(inference: str) -> None:
    """`toy-solo` has one slot: if the abandoned stream kept it, the next request would hang."""
    async with httpx.AsyncClient(base_url=inference, timeout=30) as http:
        body = chat(model="toy-solo", stream=True, max_tokens=480, ignore_eos=True)
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            events = 0
            async for line in response.aiter_lines():
                events += line.startswith("data: ")
                if events == 4:
                    break  # leave: the response is closed with the block

        async def cancelled() -> bool:
            metrics = (await http.get("/metrics")).text
            name = "llmops_inference_requests_total"
            return metric(metrics, name, model="toy-solo", outcome="cancelled") == 1

        await wait_until(cancelled, timeout=30, what="the cancelled generation to be counted")
        after = await http.post("/v1/chat/completions", json=chat(model="toy-solo", max_tokens=3))
        assert after.status_code == 200, after.text

        async def idle() -> bool:
            metrics = (await http.get("/metrics")).text
            return metric(metrics, "llmops_inference_running_requests", model="toy-solo") == 0

        await wait_until(idle, timeout=10, what="no request left running")


async def test_the_registry_decides_what_is_served(inference: str, model_dir: Path) -> None:
    async with httpx.AsyncClient(base_url=f"{inference}/v1") as http:
        new = registration("toy-next", model_dir, stage="candidate", actor="ana")
        created = await http.post("/registry/models", json=new)
        again = await http.post("/registry/models", json=new)
        conflict = await http.post("/registry/models", json={**new, "context_length": 128})
        invalid = await http.post(
            "/registry/models", json={**new, "name": "r", "engine": "remote", "source": "nope"}
        )
        assert (created.status_code, again.status_code) == (201, 200)
        assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "model_exists")
        assert invalid.status_code == 400

        for stage, actor in (("staging", "ana"), ("production", "ben")):
            moved = await http.put(
                "/registry/models/toy-next/stage",
                json={"stage": stage, "actor": actor, "reason": f"to {stage}"},
            )
            assert moved.status_code == 200, moved.text
        record = (await http.get("/registry/models/toy-next")).json()
        assert record["stage"] == "production"
        assert [(h["from_stage"], h["to_stage"], h["actor"]) for h in record["stage_history"]] == [
            (None, "candidate", "ana"),
            ("candidate", "staging", "ana"),
            ("staging", "production", "ben"),
        ]
        production = (await http.get("/registry/models", params={"stage": "production"})).json()
        assert [m["name"] for m in production["models"]] == ["toy", "toy-next", "toy-solo"]

        served = await http.post("/chat/completions", json=chat(model="toy-next", max_tokens=2))
        assert served.status_code == 200, served.text
        listed = (await http.get("/models")).json()
        card = next(m for m in listed["data"] if m["id"] == "toy-next")
        assert card["object"] == "model"
        assert card["pricing"] == {"prompt_per_1k_tokens": 0.1, "completion_per_1k_tokens": 0.2}

        retired = await http.put(
            "/registry/models/toy-next/stage", json={"stage": "retired", "actor": "ben"}
        )
        assert retired.status_code == 200
        gone = await http.post("/chat/completions", json=chat(model="toy-next"))
        assert (gone.status_code, gone.json()["error"]["code"]) == (404, "model_not_found")
        assert "toy-next" not in [m["id"] for m in (await http.get("/models")).json()["data"]]
        assert (await http.get("/models/toy-next")).status_code == 404
        assert (await http.get("/registry/models/toy-next")).json()["stage"] == "retired"
        assert (await http.get("/registry/models/nope")).status_code == 404


async def test_a_remote_model_routes_to_another_openai_compatible_server(
    inference: str, service_settings: SettingsFactory
) -> None:
    front_settings = service_settings(
        InferenceSettings,
        models=[
            {
                "name": "via-remote",
                "engine": "remote",
                "source": f"{inference}/v1",
                "upstream_model": "toy",
            },
            {"name": "nowhere", "engine": "remote", "source": "http://127.0.0.1:9/v1"},
        ],
    )
    async with serving(create_app(front_settings)) as front:
        client = AsyncOpenAI(base_url=f"{front}/v1", api_key="unused")
        upstream = AsyncOpenAI(base_url=f"{inference}/v1", api_key="unused")
        messages: Any = [{"role": "user", "content": "hello"}]
        direct = await upstream.chat.completions.create(
            model="toy", messages=messages, max_tokens=6, **GREEDY
        )
        routed = await client.chat.completions.create(
            model="via-remote", messages=messages, max_tokens=6, **GREEDY
        )
        stream = await client.chat.completions.create(
            model="via-remote", messages=messages, max_tokens=6, stream=True, **GREEDY
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert routed.choices[0].message.content == direct.choices[0].message.content == streamed
        assert routed.usage == direct.usage
        await client.close()
        await upstream.close()

        async with httpx.AsyncClient(base_url=front) as http:
            refused = await http.post(
                "/v1/chat/completions", json=chat(model="via-remote", content="x " * 600)
            )
            unreachable = await http.post("/v1/chat/completions", json=chat(model="nowhere"))
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            400,
            "context_length_exceeded",
        )
        assert (unreachable.status_code, unreachable.json()["error"]["code"]) == (
            502,
            "upstream_unreachable",
        )
