"""Server-sent events as OpenAI streams them: `data: <json>` lines, then `data: [DONE]`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from pydantic import BaseModel

DONE = b"data: [DONE]\n\n"


def sse_event(payload: BaseModel | dict[str, Any]) -> bytes:
    """One event carrying `payload` as compact JSON."""
    if isinstance(payload, BaseModel):
        data = payload.model_dump_json(exclude_none=True)
    else:
        data = json.dumps(payload, separators=(",", ":"))
    return b"data: " + data.encode() + b"\n\n"


async def sse_payloads(lines: AsyncIterable[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON payloads of an upstream's event stream, until `[DONE]` or its end."""
    async for line in lines:
        if not line.startswith("data:"):
            continue  # comments, event names and blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            payload = json.loads(data)
            if isinstance(payload, dict):
                yield payload
