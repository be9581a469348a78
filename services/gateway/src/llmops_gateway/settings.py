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
