"""Base types for event payloads and the topic contracts generated from schemas/."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict


class Payload(BaseModel):
    """The typed `data` of an event; every generated payload model derives from this.

    Unknown fields are ignored so a consumer keeps working when a producer adds an
    optional field within the same major schema version.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())


P = TypeVar("P", bound=Payload)

AvroSchema = dict[str, Any]


@dataclass(frozen=True)
class TopicContract(Generic[P]):
    """What flows on one topic: its payload model and every kept Avro schema version."""

    topic: str
    event_type: str
    payload: type[P]
    version: int
    schemas: Mapping[int, AvroSchema] = field(repr=False)
    description: str = ""

    @property
    def schema(self) -> AvroSchema:
        """The Avro schema of the payload at the version this code writes."""
        return self.schemas[self.version]

    @property
    def dlq(self) -> str:
        """Name of the dead-letter topic for this topic."""
        return f"{self.topic}.dlq"
