"""Typed service settings: shared infrastructure variables plus one prefix per service.

Infrastructure is named by the same variables in every service (`KAFKA_BOOTSTRAP_SERVERS`,
`MONGODB_URL`, `QDRANT_URL`, ...); what belongs to one service carries its prefix
(`GATEWAY_PORT`). Bad values fail at start-up with a message that names the variable.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, ClassVar, Self, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class WireFormat(StrEnum):
    """How event envelopes are encoded on Kafka."""

    JSON = "json"
    AVRO = "avro"


Port = Annotated[int, Field(ge=1, le=65535, description="TCP port to listen on")]

_BOOTSTRAP = re.compile(r"^[\w.\-\[\]:]+:\d{1,5}(,[\w.\-\[\]:]+:\d{1,5})*$")

# Infrastructure settings an operator must name explicitly in production.
_REQUIRED_IN_PRODUCTION = ("kafka_bootstrap_servers", "mongodb_url")


class ServiceSettings(BaseSettings):
    """Settings every service shares. Subclass per service with its own `env_prefix`."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_prefix="LLMOPS_")

    service_name: ClassVar[str] = "llmops"

    environment: Environment = Field(Environment.DEVELOPMENT, validation_alias="LLMOPS_ENV")
    host: str = "127.0.0.1"
    port: Port = 8000
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    kafka_topic_prefix: str = Field("", validation_alias="KAFKA_TOPIC_PREFIX")
    event_wire_format: WireFormat = Field(WireFormat.JSON, validation_alias="EVENT_WIRE_FORMAT")
    consumer_max_retries: int = Field(3, ge=0, le=20, validation_alias="CONSUMER_MAX_RETRIES")
    consumer_retry_backoff_s: float = Field(
        0.2, gt=0, le=30, validation_alias="CONSUMER_RETRY_BACKOFF_S"
    )
    consumer_concurrency: int = Field(
        8,
        ge=1,
        le=256,
        validation_alias="CONSUMER_CONCURRENCY",
        description="Events handled at once per consumer: events with different keys run "
        "concurrently, events with the same key in order. 1: strictly one at a time.",
    )
    event_spool_path: Path | None = Field(
        None,
        validation_alias="EVENT_SPOOL_PATH",
        description="Directory where events wait while Kafka is unreachable; one per process. "
        "Unset: .llmops/data/spool/<service>.",
    )
    event_spool_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=64 * 1024,
        validation_alias="EVENT_SPOOL_MAX_BYTES",
        description="Spool size bound; when full, the newest events are dropped and counted.",
    )
    event_send_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        validation_alias="EVENT_SEND_TIMEOUT_S",
        description="How long a send may go unacknowledged before Kafka counts as unreachable.",
    )

    mongodb_url: SecretStr = Field(
        SecretStr("mongodb://127.0.0.1:27017"), validation_alias="MONGODB_URL"
    )
    mongodb_database: str = Field("llmops", validation_alias="MONGODB_DATABASE")

    qdrant_url: str | None = Field(None, validation_alias="QDRANT_URL")
    qdrant_api_key: SecretStr | None = Field(None, validation_alias="QDRANT_API_KEY")
    qdrant_path: Path = Field(Path(".llmops/data/qdrant"), validation_alias="QDRANT_PATH")

    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        validation_alias="EMBEDDING_MODEL",
        description="Packaged model name or local model path; chunking and embedding share it.",
    )
    blob_store_path: Path = Field(
        Path(".llmops/data/blobs"),
        validation_alias="BLOB_STORE_PATH",
        description="Uploaded documents (claim check), shared by gateway and ingestion.",
    )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap_is_host_port_list(cls, value: str) -> str:
        if not _BOOTSTRAP.match(value):
            msg = "must be a comma-separated list of host:port, e.g. 127.0.0.1:9092"
            raise ValueError(msg)
        return value

    @field_validator("mongodb_url")
    @classmethod
    def _mongodb_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            msg = "must start with mongodb:// or mongodb+srv://"
            raise ValueError(msg)
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            msg = "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
            raise ValueError(msg)
        return level

    @model_validator(mode="after")
    def _explicit_infrastructure_in_production(self) -> Self:
        if self.environment is Environment.PRODUCTION:
            missing = [
                name for name in _REQUIRED_IN_PRODUCTION if name not in self.model_fields_set
            ]
            if missing:
                names = ", ".join(name.upper() for name in missing)
                msg = f"LLMOPS_ENV=production refuses local defaults: set {names}"
                raise ValueError(msg)
        return self

    @property
    def spool_path(self) -> Path:
        """This process's event spool directory (`EVENT_SPOOL_PATH`, else one per service)."""
        return self.event_spool_path or Path(".llmops/data/spool") / self.service_name

    @property
    def consumer_group(self) -> str:
        """Every instance of a service joins one consumer group named after it."""
        return f"{self.kafka_topic_prefix}{self.service_name}"


S = TypeVar("S", bound=ServiceSettings)


class ConfigurationError(SystemExit):
    """Raised at start-up for invalid settings; exits with a readable message, not a traceback."""


def load_settings(settings_type: type[S]) -> S:
    """Read settings from the environment, turning validation errors into one clear exit."""
    try:
        return settings_type()
    except ValidationError as exc:
        lines = [f"invalid configuration for {settings_type.service_name}:"]
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"]) or "settings"
            lines.append(f"  {location.upper()}: {error['msg']}")
        raise ConfigurationError("\n".join(lines)) from exc
