"""Settings of this service: its own env prefix, shared infrastructure variables unprefixed."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from llmops.settings import Port, ServiceSettings


class FeedbackSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACK_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "feedback"
    port: Port = 8007
