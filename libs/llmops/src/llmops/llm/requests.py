"""Reading an OpenAI-style request safely, and dropping work whose client went away.

Shared by the gateway and the inference service: a body over the limit is a 413 before
it is read whole, invalid UTF-8 and malformed JSON are 400s that say so, and a schema
violation is a 400 naming the field. Parsing goes straight from bytes through pydantic's
JSON parser, with no `json.loads` pass.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, get_type_hints

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from llmops.llm.errors import ApiError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


async def read_json(request: Request, model: type[M], max_bytes: int) -> M:
    """The body parsed as `model`: 413 past `max_bytes`, 400 when it does not fit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"the request body is not valid UTF-8 (byte {exc.start})"
        raise ApiError(400, msg, code="invalid_encoding") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise _invalid(exc) from None


class RawRequestRoute(APIRoute):
    """A route whose endpoint takes the `Request` alone and reads it itself (`read_json`).

    FastAPI's own handler solves dependencies, reads and validates a body and validates
    the response; such an endpoint uses none of it, and it cost ~20 µs per call on the
    gateway's hot path. This one calls the endpoint with the request. It stays an
    `APIRoute`, so it is listed in the OpenAPI schema like any other. Use it with
    `APIRouter(route_class=RawRequestRoute)`; an endpoint with any other signature is
    refused when the route is made.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        usage = f"{self.path}: a RawRequestRoute endpoint is `async def f(request: Request)`"
        try:
            returns = get_type_hints(endpoint).get("return")
        except NameError as exc:
            raise TypeError(f"{usage}; its annotations do not resolve: {exc}") from None
        if (
            len(inspect.signature(endpoint).parameters) != 1
            or not inspect.iscoroutinefunction(endpoint)
            or not (isinstance(returns, type) and issubclass(returns, Response))
        ):
            msg = f"{usage} -> Response (a subclass of it)"
            raise TypeError(msg)

        async def handle(request: Request) -> Response:
            response: Response = await endpoint(request)
            return response

        return handle


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"the request body is over {max_bytes} bytes", code="request_too_large")


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
    """Await `work`; if the client disconnects first, cancel it (letting it clean up) → 499.

    The work runs in the caller's task and one watcher task waits for the disconnect;
    if it comes, the watcher cancels the caller's task. Cheaper on the hot path than
    running the work in a task of its own and waiting for the first of the two.
    """
    caller = asyncio.current_task()
    if caller is None:
        msg = "unless_disconnected needs a running task"
        raise RuntimeError(msg)
    finished = False
    gone = False

    def on_disconnect(watcher: asyncio.Task[None]) -> None:
        nonlocal gone
        if finished or watcher.cancelled() or watcher.exception() is not None:
            return
        gone = True
        caller.cancel()

    watcher = asyncio.ensure_future(_disconnected(request))
    watcher.add_done_callback(on_disconnect)
    try:
        result = await work
    except asyncio.CancelledError:
        # Our cancel, and nobody else's: the client left. Anyone else's propagates.
        if gone and caller.uncancel() == 0:
            raise ApiError(
                499, "the client closed the request", code="client_closed_request"
            ) from None
        raise
    finally:
        finished = True
        watcher.cancel()
    if gone:  # the work swallowed our cancel and answered anyway: withdraw it
        caller.uncancel()
    return result


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body has been read: only that can come)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
