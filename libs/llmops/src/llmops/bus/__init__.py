"""Kafka wiring shared by every service."""

from llmops.bus.eventbus import DLQ_HEADERS, EventBus, EventHandler, PermanentError

__all__ = ["DLQ_HEADERS", "EventBus", "EventHandler", "PermanentError"]
