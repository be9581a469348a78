"""The remote engine's wire handling: what it sends, how it reads streams, how it maps failures.

The upstream is an `httpx.MockTransport` so every failure mode is exact; the service-level
tests route a remote model to a real inference service over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from llmops.llm.errors import ApiError
from llmops_inference.engines.base import ChatTurn, GenerationRequest, collect
from llmops_inference.engines.remote import RemoteEngine

MESSAGES = [ChatTurn("user", "hi")]


def remote(handler: Callable[[httpx.Request], httpx.Response]) -> RemoteEngine:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return RemoteEngine(
        "alias", "http://upstream/v1", http=http, upstream_model="gpt-x", api_key="sk-test"
    )


def sse(*payloads: object) -> bytes:
    events = [f"data: {json.dumps(p)}\n\n" for p in payloads]
    return ("".join(events) + "data: [DONE]\n\n").encode()


async def test_a_stream_is_read_into_deltas_with_the_upstream_usage() -> None:
    sent: list[dict[str, object]] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        assert request.headers["authorization"] == "Bearer sk-test"
        assert request.url == "http://upstream/v1/chat/completions"
        body = sse(
            {"choices": [{"delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"delta": {"content": "Hel"}}]},
            {"choices": [{"delta": {"content": "lo"}, "finish_reason": "length"}]},
            {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
        )
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    request = GenerationRequest(
        MESSAGES,
        max_tokens=2,
        temperature=0.0,
        stop=["x"],
        extra={"response_format": {"type": "text"}},
    )
    text, finish, usage = await collect(remote(upstream).stream(request))

    assert (text, finish, usage.prompt_tokens, usage.completion_tokens) == ("Hello", "length", 9, 2)
    assert sent[0]["model"] == "gpt-x"
    assert sent[0]["stream_options"] == {"include_usage": True}
    assert sent[0]["stop"] == ["x"]
    assert sent[0]["response_format"] == {"type": "text"}  # unknown parameters pass through


async def test_a_whole_answer_is_one_call() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is False
        choice = {"message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        return httpx.Response(200, json={"choices": [choice], "usage": usage})

    text, finish, usage = await collect(
        remote(upstream).stream(GenerationRequest(MESSAGES, stream=False))
    )
    assert (text, finish, usage.total_tokens) == ("Hi!", "stop", 5)


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected_status", "expected_code"),
    [
        (
            400,
            {"error": {"message": "too long", "code": "context_length_exceeded"}},
            {},
            400,
            "context_length_exceeded",
        ),
        (404, {"error": {"message": "no such model"}}, {}, 404, "upstream_rejected"),
        (
            429,
            {"error": {"message": "slow down"}},
            {"retry-after": "7"},
            429,
            "upstream_rate_limited",
        ),
        (500, {"error": {"message": "boom"}}, {}, 502, "upstream_error"),
        (503, None, {}, 502, "upstream_error"),
    ],
)
async def test_upstream_refusals_map_to_openai_errors(
    status: int,
    body: object,
    headers: dict[str, str],
    expected_status: int,
    expected_code: str,
) -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        content = json.dumps(body).encode() if body is not None else b"overloaded"
        return httpx.Response(status, content=content, headers=headers)

    for stream in (True, False):
        with pytest.raises(ApiError) as failed:
            await anext(remote(upstream).stream(GenerationRequest(MESSAGES, stream=stream)))
        assert (failed.value.status, failed.value.code) == (expected_status, expected_code)
        if status == 429:
            assert failed.value.headers == {"Retry-After": "7"}
        if body is not None and status < 500:
            assert failed.value.message == body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (httpx.ConnectError("refused"), 502, "upstream_unreachable"),
        (httpx.ReadTimeout("slow"), 504, "upstream_timeout"),
    ],
)
async def test_an_unreachable_or_slow_upstream_is_a_gateway_error(
    error: httpx.HTTPError, status: int, code: str
) -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(ApiError) as failed:
        await anext(remote(upstream).stream(GenerationRequest(MESSAGES)))
    assert (failed.value.status, failed.value.code) == (status, code)


async def test_an_error_in_the_middle_of_a_stream_ends_it_with_that_error() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        body = sse(
            {"choices": [{"delta": {"content": "Hel"}}]}, {"error": {"message": "engine died"}}
        )
        return httpx.Response(200, content=body)

    stream = remote(upstream).stream(GenerationRequest(MESSAGES))
    assert (await anext(stream)).text == ""  # accepted
    assert (await anext(stream)).text == "Hel"
    with pytest.raises(ApiError, match="engine died") as failed:
        await anext(stream)
    assert failed.value.status == 502
