"""A deterministic OpenAI-compatible server: the upstream for gateway tests and benchmarks.

It answers `/v1/chat/completions` (whole or streamed) by echoing the last user message
word by word, and `/v1/models`. Knobs make it misbehave on purpose: fail with a status,
answer slowly, token by token. It counts calls and streams cancelled by the client, so
tests can check fallbacks and cancellation. Run it alone with
`python -m llmops.llm.stub_server --port 9100`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class StubBehaviour:
    """What the stub does; tests change it while it runs."""

    fail_status: int | None = None
    delay_s: float = 0.0
    token_delay_s: float = 0.0
    reply: str | None = None
    calls: int = 0
    cancelled_streams: int = 0
    models: list[str] = field(default_factory=lambda: ["stub"])


def reply_for(body: dict[str, Any], behaviour: StubBehaviour) -> str:
    if behaviour.reply is not None:
        return behaviour.reply
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    last = users[-1].get("content", "") if users else ""
    text = last if isinstance(last, str) else json.dumps(last)
    return f"echo: {text}"


def build_app(behaviour: StubBehaviour) -> Starlette:
    async def chat(request: Request) -> Response:
        behaviour.calls += 1
        body = await request.json()
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        if behaviour.fail_status is not None:
            error = {"message": "stub failure", "type": "server_error", "code": "stub"}
            return JSONResponse({"error": error}, status_code=behaviour.fail_status)
        content = reply_for(body, behaviour)
        words = content.split(" ")
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        model = body.get("model", "stub")
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            _stream(ident, model, words, usage, include_usage, behaviour),
            media_type="text/event-stream",
        )

    async def models(request: Request) -> Response:
        cards = [
            {"id": name, "object": "model", "created": 0, "owned_by": "stub"}
            for name in behaviour.models
        ]
        return JSONResponse({"object": "list", "data": cards})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


async def _stream(
    ident: str,
    model: str,
    words: list[str],
    usage: dict[str, int],
    include_usage: bool,
    behaviour: StubBehaviour,
) -> AsyncIterator[bytes]:
    def event(payload: dict[str, Any]) -> bytes:
        base = {"id": ident, "object": "chat.completion.chunk", "created": 0, "model": model}
        return b"data: " + json.dumps(base | payload).encode() + b"\n\n"

    try:
        yield event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        for position, word in enumerate(words):
            if behaviour.token_delay_s:
                await asyncio.sleep(behaviour.token_delay_s)
            piece = word if position == 0 else f" {word}"
            yield event({"choices": [{"index": 0, "delta": {"content": piece}}]})
        yield event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if include_usage:
            yield event({"choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"
    except asyncio.CancelledError:
        behaviour.cancelled_streams += 1
        raise


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    uvicorn.run(build_app(StubBehaviour()), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
