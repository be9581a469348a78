"""Settings of this service: its own env prefix, shared infrastructure variables unprefixed."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llmops.settings import Port, ServiceSettings
from llmops_inference.model_registry import NewModel


class InferenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INFERENCE_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "inference"
    port: Port = 8004

    models: list[NewModel] = Field(
        default_factory=list,
        description="Models to register at start-up when absent (JSON list of registrations); "
        "the registry keeps what is already there, stage included.",
    )
    preload: list[str] = Field(
        default_factory=list,
        description="Model names to load at start-up (JSON list); others load on first use.",
    )
    load_wait_s: float = Field(
        30.0, gt=0, description="How long an HTTP request waits for its model to load before 503."
    )
    registry_cache_s: float = Field(
        5.0,
        ge=0,
        description="How long a registry lookup is reused (stage changes made on "
        "another replica are seen after this).",
    )
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")

    # transformers engine defaults (a model's registry options override them)
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    dtype: str = Field("auto", description="auto, float32, bfloat16, float16")
    max_batch_size: int = Field(16, ge=1, le=512)
    max_wait_ms: float = Field(5.0, ge=0, le=1000, description="Batch gathering wait when idle.")
    torch_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="torch intra-op threads for the process (default: torch's choice); on a "
        "CPU shared with other work fewer threads spin less.",
    )

    # vLLM engine: its own environment, never imported here (ADR 7)
    vllm_command: str = Field(
        "vllm", description="The vllm executable (with arguments), e.g. /opt/vllm/bin/vllm."
    )
    vllm_start_timeout_s: float = Field(900.0, gt=0)
    vllm_log_dir: Path = Path(".llmops/logs")

    # remote engine (and the route to vLLM)
    upstream_connect_timeout_s: float = Field(5.0, gt=0)
    upstream_read_timeout_s: float = Field(
        300.0, gt=0, description="Longest silence allowed from an upstream, first token included."
    )
