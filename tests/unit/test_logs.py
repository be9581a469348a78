"""Log lines are JSON and carry trace_id, span_id, service and tenant."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from llmops.telemetry import bind_tenant, configure_logging, get_logger


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_log_lines_carry_trace_service_and_tenant(
    capsys: pytest.CaptureFixture[str], restore_logging: object
) -> None:
    configure_logging("indexer", "INFO")
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("work") as span:
        bind_tenant("acme")
        get_logger("test").info("chunk indexed", chunk_id="c1")
        logging.getLogger("third.party").warning("from the standard library")
    context = span.get_span_context()

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    ours, foreign = lines
    assert ours["event"] == "chunk indexed"
    assert ours["chunk_id"] == "c1"
    assert ours["service"] == "indexer"
    assert ours["tenant"] == "acme"
    assert ours["trace_id"] == format(context.trace_id, "032x")
    assert ours["span_id"] == format(context.span_id, "016x")
    assert foreign["level"] == "warning"
    assert foreign["trace_id"] == ours["trace_id"]
    assert foreign["service"] == "indexer"
