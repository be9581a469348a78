"""Outgoing HTTP calls with client spans and W3C trace context injected into the request."""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider


def traced_http_client(tracer_provider: TracerProvider, **client_options: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` whose requests are spans of the caller's trace.

    Services call each other (gateway → indexer, prompts, inference) with it, so one chat
    request is one trace across every hop.
    """
    client = httpx.AsyncClient(**client_options)
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=tracer_provider)
    return client
