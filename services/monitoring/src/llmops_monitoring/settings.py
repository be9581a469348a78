"""Settings of this service: its own env prefix, shared infrastructure variables unprefixed."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from llmops.settings import Port, ServiceSettings


class MonitoringSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MONITORING_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "monitoring"
    port: Port = 8006

    # -- rollups ----------------------------------------------------------------------------
    flush_interval_s: float = Field(
        2.0,
        gt=0,
        description="How often folded events are written to MongoDB (and their offsets kept); "
        "queries and alerts see events this much later at most.",
    )
    compact_interval_s: float = Field(
        60.0,
        gt=0,
        description="How often a partition's rollup deltas of the last two days are merged "
        "into one document per cell, so queries read few documents.",
    )
    dedupe_window: int = Field(
        200_000,
        ge=0,
        description="Event ids remembered per process to drop a producer's duplicate sends.",
    )

    # -- alerts -----------------------------------------------------------------------------
    alert_rules_path: Path | None = Field(
        None, description="YAML file of alert rules (see docs/monitoring.md); unset: no alerts."
    )
    alert_interval_s: float = Field(15.0, gt=0, description="How often alert rules are evaluated.")
    alert_webhook_url: str | None = Field(
        None, description="Where firing and resolved alerts are POSTed as JSON; unset: none."
    )
    alert_webhook_max_attempts: int = Field(
        8, ge=1, description="Deliveries tried per alert notification before giving up."
    )
    alert_webhook_backoff_s: float = Field(
        1.0, gt=0, description="First retry delay of a failed webhook delivery; doubles each time."
    )

    # -- drift ------------------------------------------------------------------------------
    drift_sample_rate: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of completions kept (hash-sampled by completion id) as drift samples.",
    )
    drift_samples_per_minute: int = Field(
        30,
        ge=0,
        description="Drift samples kept at most per minute and tenant, model, prompt and key "
        "(per process), so the samples stay bounded under heavy traffic.",
    )
    drift_embedding_model: str = Field(
        "all-MiniLM-L6-v2", description="Encoder of query texts for embedding drift."
    )

    # -- archive ----------------------------------------------------------------------------
    archive_dir: Path | None = Field(
        Path(".llmops/data/archive"),
        description="Root of the Parquet archive (one folder per topic and day); unset: off.",
    )
    archive_flush_s: float = Field(
        10.0, gt=0, description="Longest time an archived event waits before its file is written."
    )
    archive_max_rows: int = Field(
        50_000, ge=1, description="Rows per Parquet file at most (a file is written when full)."
    )

    @field_validator("archive_dir", "alert_rules_path", "alert_webhook_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`MONITORING_ARCHIVE_DIR=` turns the archive off rather than archiving into `.`."""
        return None if value == "" else value
