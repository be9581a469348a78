"""The envelope every event travels in (DESIGN.md: id, type, schema_version, source, ...)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Generic
from uuid import uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from llmops.events.base import P, TopicContract


class Envelope(BaseModel, Generic[P]):
    """One event: metadata for routing, idempotency and tracing around a typed payload."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, description="Unique event id; consumers dedupe on it.")
    type: str = Field(min_length=1, description="Payload record name, e.g. CompletionRecorded.")
    schema_version: int = Field(ge=1, description="Schema version the producer wrote.")
    source: str = Field(min_length=1, description="Service that produced the event.")
    time: AwareDatetime = Field(description="When it happened, UTC.")
    tenant: str = Field(min_length=1, description="Tenant the event belongs to.")
    subject: str = Field(min_length=1, description="Entity id the event is about; the Kafka key.")
    data: P


def new_event(
    contract: TopicContract[P],
    data: P,
    *,
    source: str,
    tenant: str,
    subject: str,
    event_id: str | None = None,
    time: datetime | None = None,
) -> Envelope[P]:
    """Wrap a payload for `contract`'s topic.

    Pass a deterministic `event_id` when the same fact may be published twice (a retry
    after a crash) so consumers can recognise the duplicate.
    """
    return Envelope[contract.payload](  # type: ignore[name-defined]
        id=event_id or str(uuid4()),
        type=contract.event_type,
        schema_version=contract.version,
        source=source,
        time=time or _now_millis(),
        tenant=tenant,
        subject=subject,
        data=data,
    )


def _now_millis() -> datetime:
    """Now, at the millisecond precision events keep on the wire (Avro timestamp-millis)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
