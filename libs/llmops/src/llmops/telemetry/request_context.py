"""The request and trace a piece of code runs in: its request id and trace id.

`HttpServerTelemetry` (llmops.telemetry.http_server) gives every request its id and span;
these read them back.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from starlette.types import Scope


def request_id_of(scope: Scope) -> str | None:
    """The id the middleware gave this request (`request.state.request_id`)."""
    state: dict[str, Any] = scope.get("state") or {}
    value = state.get("request_id")
    return value if isinstance(value, str) else None


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), or None when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None
