"""Spans are recorded when something exports them; otherwise they only carry their ids."""

from __future__ import annotations

from llmops.telemetry.tracing import configure_tracing


def test_without_an_exporter_spans_are_not_recorded_but_keep_their_ids() -> None:
    provider = configure_tracing("gateway", env={})
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request") as parent:
        child = tracer.start_span("upstream call")

    assert not parent.is_recording()
    assert parent.get_span_context().is_valid
    assert not parent.get_span_context().trace_flags.sampled
    # Logs and traceparent headers still tie the pieces of one request together.
    assert child.get_span_context().trace_id == parent.get_span_context().trace_id


def test_with_an_exporter_spans_are_recorded_and_sampled() -> None:
    provider = configure_tracing("gateway", env={"OTEL_TRACES_EXPORTER": "console"})
    span = provider.get_tracer("test").start_span("request")
    try:
        assert span.is_recording()
        assert span.get_span_context().trace_flags.sampled
    finally:
        span.end()
        provider.shutdown()


def test_otel_sdk_disabled_records_nothing_even_with_an_exporter_named() -> None:
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}
    span = configure_tracing("gateway", env=env).get_tracer("test").start_span("request")
    assert not span.is_recording()
