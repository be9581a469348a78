"""Every response names its request and its trace: `X-Request-ID` and W3C `traceparent`.

A client or an SRE holding a response can find the request in the logs (by request id)
and its trace (by trace id). An incoming `X-Request-ID` is kept when it is sane, so a
caller's own id flows through; otherwise one is made. Pure ASGI, so it adds no task
and leaves streamed responses alone.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(scope: Scope) -> str | None:
    """The id the middleware gave this request (`request.state.request_id`)."""
    state: dict[str, Any] = scope.get("state") or {}
    value = state.get("request_id")
    return value if isinstance(value, str) else None


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), or None when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def traceparent() -> str | None:
    """The W3C `traceparent` of the current span, or None when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                request_id = candidate if _SANE_ID.match(candidate) else None
                break
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                parent = traceparent()
                if parent is not None:
                    headers.append((b"traceparent", parent.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_ids)
