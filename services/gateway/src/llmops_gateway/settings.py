"""Settings of this service: its own env prefix, shared infrastructure variables unprefixed."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llmops.settings import Port, ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "gateway"
    port: Port = 8000
    prompts_url: str = Field(
        "http://127.0.0.1:8003",
        description="Base URL of the prompts service (GATEWAY_PROMPTS_URL).",
    )
    ingestion_url: str = Field(
        "http://127.0.0.1:8001",
        description="Base URL of the ingestion service (GATEWAY_INGESTION_URL).",
    )
    indexer_url: str = Field(
        "http://127.0.0.1:8002",
        description="Base URL of the indexer's retrieval API (GATEWAY_INDEXER_URL).",
    )
    max_upload_bytes: int = Field(
        50 * 2**20,
        ge=1,
        description="Largest uploaded file; larger ones are reported failed in their job.",
    )
