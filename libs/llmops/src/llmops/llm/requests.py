"""Reading an OpenAI-style request safely, and dropping work whose client went away.

Shared by the gateway and the inference service: a body over the limit is a 413 before
it is read whole, invalid UTF-8 and malformed JSON are 400s that say so, and a schema
violation is a 400 naming the field. Parsing goes straight from bytes through pydantic's
JSON parser, with no `json.loads` pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from llmops.llm.errors import ApiError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


async def read_json(request: Request, model: type[M], max_bytes: int) -> M:
    """The body parsed as `model`: 413 past `max_bytes`, 400 when it does not fit."""
    too_large = ApiError(
        413, f"the request body is over {max_bytes} bytes", code="request_too_large"
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"the request body is not valid UTF-8 (byte {exc.start})"
        raise ApiError(400, msg, code="invalid_encoding") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False)
    if errors and errors[0]["type"] == "json_invalid":
        message = f"the request body is not valid JSON: {errors[0]['msg']}"
        return ApiError(400, message, code="invalid_json")
    problems = []
    for error in errors[:5]:
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"{where or 'body'}: {error['msg']}")
    param = ".".join(str(part) for part in errors[0]["loc"]) if errors else None
    return ApiError(
        400, "; ".join(problems) or "invalid request", code="invalid_request", param=param or None
    )


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`; if the client disconnects first, cancel it (letting it clean up) → 499."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait(
                {task}
            )  # the work's own cleanup (a freed engine slot, a closed call)
    if task.cancelled():
        raise ApiError(499, "the client closed the request", code="client_closed_request")
    return task.result()


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body has been read: only that can come)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
