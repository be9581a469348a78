"""Settings of this service: its own env prefix, shared infrastructure variables unprefixed."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from llmops.settings import Port, ServiceSettings


class IngestionSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INGESTION_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "ingestion"
    port: Port = 8001
