"""OpenTelemetry tracing configured from the standard OTEL_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

_OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configure_tracing(
    service: str, version: str = "0.1.0", env: Mapping[str, str] | None = None
) -> TracerProvider:
    """Build the service's tracer provider; the caller passes it to what it instruments.

    Spans are exported over OTLP/HTTP when an OTLP endpoint is configured, printed when
    `OTEL_TRACES_EXPORTER=console`, and otherwise not recorded unless a caller's
    `traceparent` says its trace is sampled: their ids still correlate logs and travel
    in `traceparent` headers. The
    provider is returned rather than installed globally so tests can run several
    services in one process, each with its own.
    """
    env = os.environ if env is None else env
    resource = Resource.create(
        {SERVICE_NAME: env.get("OTEL_SERVICE_NAME", service), SERVICE_VERSION: version}
    )
    exporters = {name.strip() for name in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        exporters = set()
    processors = []
    if "otlp" in exporters and any(env.get(var) for var in _OTLP_ENDPOINT_VARS):
        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in exporters:
        processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
    # Traces this service starts and nobody exports are not recorded: their spans still
    # carry trace and span ids (logs, `traceparent` on responses and outgoing calls), at
    # a fraction of a recording span's cost (~15 µs each on the gateway's hot path,
    # ADR 14). A caller's sampled trace stays sampled, so services downstream that
    # export it still get their part of it.
    sampler = None if processors else ParentBased(root=ALWAYS_OFF)
    provider = TracerProvider(resource=resource, sampler=sampler)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider
