"""Kafka wiring shared by every service."""

from llmops.bus.eventbus import DLQ_HEADERS, EventBus, EventHandler, PermanentError
from llmops.bus.outbox import EventOutbox, OutboxClosedError
from llmops.bus.spool import EventSpool

__all__ = [
    "DLQ_HEADERS",
    "EventBus",
    "EventHandler",
    "EventOutbox",
    "EventSpool",
    "OutboxClosedError",
    "PermanentError",
]
