"""Logs, traces and metrics, configured the same way in every service."""

from llmops.telemetry.http import traced_http_client
from llmops.telemetry.logs import bind_tenant, configure_logging, get_logger
from llmops.telemetry.metrics import ServiceMetrics
from llmops.telemetry.tracing import configure_tracing

__all__ = [
    "ServiceMetrics",
    "bind_tenant",
    "configure_logging",
    "configure_tracing",
    "get_logger",
    "traced_http_client",
]
