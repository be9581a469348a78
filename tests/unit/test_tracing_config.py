"""Spans are recorded when something exports them; otherwise they only carry their ids."""

from __future__ import annotations

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

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


def test_without_an_exporter_a_callers_sampled_trace_stays_sampled() -> None:
    provider = configure_tracing("gateway", env={})
    incoming = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    with provider.get_tracer("test").start_as_current_span(
        "request", context=TraceContextTextMapPropagator().extract(incoming)
    ) as span:
        recorded = span.is_recording()
        outgoing: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(outgoing)

    assert recorded
    assert span.get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert outgoing["traceparent"].endswith("-01")  # downstream services sample it too


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
