"""Chat completions through the gateway: the official OpenAI client, streaming, fallbacks,
cancellation, the exact cache, bad input, and the `llm.completions` record of every call.

The upstream is the stub OpenAI-compatible server over real HTTP; the gateway runs with
real Kafka and FerretDB.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from private_kafka import PrivateKafka

from llmops.events.catalog import Topic
from llmops.llm.stub_server import StubBehaviour, build_app
from llmops.testing import (
    SettingsFactory,
    bearer,
    create_api_key,
    read_topic,
    serving,
    wait_until,
)
from llmops_gateway.app import create_app as create_gateway
from llmops_gateway.settings import GatewaySettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

ADMIN_KEY = "sk-llmops-test-admin-0123456789abcdef"


@dataclass
class Gateway:
    url: str
    http: httpx.AsyncClient
    key: str
    settings: GatewaySettings

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.key)

    def openai(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0)

    async def chat(self, **body: Any) -> httpx.Response:
        return await self.http.post("/v1/chat/completions", json=body, headers=self.auth)

    async def completion_events(self, count: int) -> list[dict[str, Any]]:
        records = await read_topic(
            self.settings.kafka_bootstrap_servers,
            f"{self.settings.kafka_topic_prefix}{Topic.LLM_COMPLETIONS}",
            count=count,
        )
        return [json.loads(record.value) for record in records]


@asynccontextmanager
async def gateway(
    service_settings: SettingsFactory, routes: dict[str, Any], **values: Any
) -> AsyncIterator[Gateway]:
    settings = service_settings(
        GatewaySettings,
        admin_key=ADMIN_KEY,
        model_routes={"routes": routes},
        inference_url="",
        **values,
    )
    async with (
        serving(create_gateway(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        secret = await create_api_key(http, ADMIN_KEY, name="chat tests", tenant="acme")
        yield Gateway(url, http, secret, settings)


@asynccontextmanager
async def stubs(*behaviours: StubBehaviour) -> AsyncIterator[list[str]]:
    async with AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(serving(build_app(b))) for b in behaviours]
        yield [f"{url}/v1" for url in urls]


def _route(url: str, **extra: Any) -> dict[str, Any]:
    return {"backends": [{"url": url, "model": "stub"}], **extra}


async def test_the_openai_client_gets_whole_and_streamed_answers_and_each_call_is_recorded(
    service_settings: SettingsFactory,
) -> None:
    upstream = StubBehaviour()
    price = {"prompt_per_1k": 1.0, "completion_per_1k": 2.0}
    async with (
        stubs(upstream) as (url,),
        gateway(service_settings, {"chat": _route(url, price=price)}) as gw,
    ):
        client = gw.openai()
        whole = await client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hello from ana@example.com"}],
            user="user-7",
            extra_body={"metadata": {"session_id": "s-1", "tags": ["faq"]}},
        )
        assert whole.choices[0].message.content == "echo: hello from ana@example.com"
        assert whole.usage is not None
        assert whole.usage.completion_tokens == 4
        assert whole.id.startswith("chatcmpl-")

        stream = await client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "stream these words"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage, ids = [], None, set()
        async for chunk in stream:
            ids.add(chunk.id)
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        assert "".join(pieces) == "echo: stream these words"
        assert usage is not None
        assert usage.completion_tokens == 4
        assert len(ids) == 1

        raw = await gw.chat(model="chat", messages=[{"role": "user", "content": "headers"}])
        assert raw.status_code == 200
        assert raw.headers["x-request-id"]
        assert raw.headers["traceparent"].startswith("00-")

        events = await gw.completion_events(3)
    by_id = {event["data"]["completion_id"]: event["data"] for event in events}
    first, streamed, third = by_id[whole.id], by_id[ids.pop()], by_id[raw.json()["id"]]
    assert first["completion_id"] == whole.id
    assert first["requested_model"] == "chat"
    assert first["served_model"].startswith("stub@127.0.0.1")
    assert first["status"] == "ok"
    assert first["stream"] is False
    assert first["user"] == "user-7"
    assert first["session_id"] == "s-1"
    assert first["tags"] == ["faq"]
    assert first["redaction"] == "masked"
    assert first["messages"] == [{"role": "user", "content": "hello from [EMAIL]"}]
    assert first["output"] == "echo: hello from [EMAIL]"
    assert first["usage"]["completion_tokens"] == 4
    assert first["usage"]["prompt_tokens"] == 3
    assert first["cost_usd"] == pytest.approx((3 * 1.0 + 4 * 2.0) / 1000)
    assert first["time_to_first_token_ms"] is None
    assert first["trace_id"] is not None
    assert streamed["stream"] is True
    assert streamed["time_to_first_token_ms"] is not None
    assert streamed["output"] == "echo: stream these words"
    assert streamed["finish_reason"] == "stop"
    assert third["request_id"] == raw.headers["x-request-id"]
    assert events[0]["tenant"] == "acme"
    assert upstream.calls == 3


async def test_a_failing_primary_falls_back_to_the_secondary_model(
    service_settings: SettingsFactory,
) -> None:
    broken, healthy = StubBehaviour(fail_status=503), StubBehaviour(reply="from the backup")
    async with stubs(broken, healthy) as (primary_url, backup_url):
        routes = {"chat": _route(primary_url, fallbacks=["backup"]), "backup": _route(backup_url)}
        async with gateway(service_settings, routes) as gw:
            whole = await gw.chat(model="chat", messages=[{"role": "user", "content": "hi"}])
            assert whole.status_code == 200, whole.text
            assert whole.json()["choices"][0]["message"]["content"] == "from the backup"
            streamed = await gw.chat(
                model="chat", messages=[{"role": "user", "content": "hello"}], stream=True
            )
            assert "from the backup" in "".join(
                json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                for line in streamed.text.splitlines()
                if line.startswith("data: {") and json.loads(line[6:])["choices"]
            )
            broken.fail_status = None
            healthy.fail_status = 500
            direct = await gw.chat(model="chat", messages=[{"role": "user", "content": "hey"}])
            assert direct.json()["choices"][0]["message"]["content"] == "echo: hey"
            events = await gw.completion_events(3)
    assert broken.calls == 3
    assert healthy.calls == 2
    served = [event["data"]["served_model"] for event in events]
    backup_host = backup_url.split("//")[1].split("/")[0]
    assert served[0] == served[1] == f"stub@{backup_host}"
    assert served[2] != served[0]


async def test_every_backend_failing_is_a_502_that_says_why(
    service_settings: SettingsFactory,
) -> None:
    async with (
        stubs(StubBehaviour(fail_status=500)) as (url,),
        gateway(service_settings, {"chat": _route(url)}) as gw,
    ):
        response = await gw.chat(model="chat", messages=[{"role": "user", "content": "hi"}])
        assert response.status_code == 502
        assert "every backend" in response.json()["error"]["message"]
        (event,) = await gw.completion_events(1)
    assert event["data"]["status"] == "error"
    assert event["data"]["error"]["code"] == "upstream_unavailable"


async def test_a_client_leaving_mid_stream_cancels_the_upstream_call(
    service_settings: SettingsFactory,
) -> None:
    upstream = StubBehaviour(reply=" ".join(["word"] * 200), token_delay_s=0.05)
    async with (
        stubs(upstream) as (url,),
        gateway(service_settings, {"chat": _route(url)}) as gw,
    ):
        body = {"model": "chat", "messages": [{"role": "user", "content": "long"}], "stream": True}
        async with gw.http.stream(
            "POST", "/v1/chat/completions", json=body, headers=gw.auth
        ) as response:
            received = 0
            async for line in response.aiter_lines():
                received += line.startswith("data: ")
                if received == 3:
                    break
        await wait_until(lambda: upstream.cancelled_streams == 1, what="the upstream cancelled")
        (event,) = await gw.completion_events(1)
    assert event["data"]["finish_reason"] == "cancelled"
    assert event["data"]["error"]["code"] == "client_disconnected"


async def test_identical_requests_are_answered_from_the_exact_cache(
    service_settings: SettingsFactory,
) -> None:
    upstream = StubBehaviour()
    async with (
        stubs(upstream) as (url,),
        gateway(service_settings, {"chat": _route(url)}) as gw,
    ):
        body = {"model": "chat", "messages": [{"role": "user", "content": "cache me"}]}
        first = await gw.chat(**body)
        second = await gw.chat(**body)
        streamed = await gw.chat(**body, stream=True)
        assert first.headers["x-llmops-cache"] == "none"
        assert second.headers["x-llmops-cache"] == "exact"
        assert second.json()["llmops"]["cache"] == "exact"
        assert second.json()["choices"][0]["message"]["content"] == "echo: cache me"
        assert second.json()["id"] != first.json()["id"]
        assert streamed.headers["x-llmops-cache"] == "exact"
        assert "echo: cache me" in streamed.text
        events = await gw.completion_events(3)
    assert upstream.calls == 1
    assert [event["data"]["cache"] for event in events] == ["none", "exact", "exact"]
    assert events[1]["data"]["cost_usd"] == 0


async def test_bad_requests_get_a_4xx_that_says_what_to_fix(
    service_settings: SettingsFactory,
) -> None:
    async with (
        stubs(StubBehaviour()) as (url,),
        gateway(service_settings, {"chat": _route(url)}, max_request_bytes=4096) as gw,
    ):

        async def post(content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
            return await gw.http.post(
                "/v1/chat/completions",
                content=content,
                headers={**gw.auth, "Content-Type": "application/json", **(headers or {})},
            )

        def error(response: httpx.Response) -> dict[str, Any]:
            body: dict[str, Any] = response.json()["error"]
            return body

        malformed = await post(b'{"model": "chat", "messages": [')
        assert malformed.status_code == 400
        assert error(malformed)["code"] == "invalid_json"
        not_utf8 = await post(
            b'{"model": "chat", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
        )
        assert not_utf8.status_code == 400
        no_messages = await gw.chat(model="chat")
        assert no_messages.status_code == 400
        assert "messages" in error(no_messages)["message"]
        bad_role = await gw.chat(model="chat", messages=[{"role": "robot", "content": "x"}])
        assert bad_role.status_code == 400
        assert error(bad_role)["param"] == "messages.0.role"
        hot = await gw.chat(
            model="chat", messages=[{"role": "user", "content": "x"}], temperature=5
        )
        assert hot.status_code == 400
        assert error(hot)["param"] == "temperature"
        unknown = await gw.chat(model="nope", messages=[{"role": "user", "content": "x"}])
        assert unknown.status_code == 404
        assert error(unknown)["code"] == "model_not_found"
        assert "chat" in error(unknown)["message"]
        huge = await gw.chat(model="chat", messages=[{"role": "user", "content": "x" * 5000}])
        assert huge.status_code == 413
        anonymous = await gw.http.post(
            "/v1/chat/completions", json={"model": "chat", "messages": []}
        )
        assert anonymous.status_code == 401
        assert error(anonymous)["type"] == "authentication_error"


async def test_calls_during_a_broker_outage_are_recorded_once_after_it_returns(
    service_settings: SettingsFactory, private_kafka: PrivateKafka, tmp_path: Path
) -> None:
    prefix = await private_kafka.create_topics()
    upstream = StubBehaviour()
    async with (
        stubs(upstream) as (url,),
        gateway(
            service_settings,
            {"chat": _route(url)},
            KAFKA_BOOTSTRAP_SERVERS=private_kafka.bootstrap,
            KAFKA_TOPIC_PREFIX=prefix,
            EVENT_SPOOL_PATH=str(tmp_path / "spool"),
        ) as gw,
    ):
        before = await gw.chat(model="chat", messages=[{"role": "user", "content": "before"}])
        assert before.status_code == 200
        await private_kafka.stop()
        ids = [before.json()["id"]]
        for n in range(5):
            during = await gw.chat(model="chat", messages=[{"role": "user", "content": f"q{n}"}])
            assert during.status_code == 200, during.text  # the outage never reaches the user
            ids.append(during.json()["id"])
        health = (await gw.http.get("/healthz")).json()
        assert health["status"] == "ok"
        assert health["checks"]["kafka"] != "ok"

        async def spooled() -> float:
            metrics = (await gw.http.get("/metrics")).text
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("llmops_events_spooled{")
            )

        await wait_until(lambda: _at_least(spooled, 5), what="the outage's events on disk")
        await private_kafka.start()
        events = await gw.completion_events(len(ids))
        # nothing more arrives: each completion is on the topic exactly once
        with pytest.raises(TimeoutError):
            await read_topic(
                private_kafka.bootstrap,
                f"{prefix}{Topic.LLM_COMPLETIONS}",
                count=len(ids) + 1,
                timeout=5,
            )
    assert sorted(event["data"]["completion_id"] for event in events) == sorted(ids)


async def _at_least(value: Callable[[], Awaitable[float]], minimum: float) -> bool:
    return await value() >= minimum
