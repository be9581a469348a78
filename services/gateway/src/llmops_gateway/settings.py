"""Settings of this service: its own env prefix, shared infrastructure variables unprefixed."""

from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from llmops.events.catalog import RedactionPolicy
from llmops.settings import Environment, Port, ServiceSettings
from llmops_gateway.routing import RouteTable

# Works out of the box in development (an admin key for `make up`); refused in production.
DEVELOPMENT_ADMIN_KEY = "sk-llmops-dev-admin"
MIN_ADMIN_KEY_CHARS = 32


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
    admin_key: SecretStr = Field(
        SecretStr(DEVELOPMENT_ADMIN_KEY),
        description="Bootstrap admin API key, not stored, for creating the first keys "
        "(GATEWAY_ADMIN_KEY); production needs one of at least 32 characters.",
    )
    key_cache_ttl_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="How long a replica trusts a verified key without reading MongoDB: a "
        "revoked key stops working on every replica within this time.",
    )
    inference_url: str | None = Field(
        "http://127.0.0.1:8004/v1",
        description="The inference service's OpenAI-compatible base URL: serves every model "
        "alias that GATEWAY_MODEL_ROUTES does not name; empty: only the routes' aliases.",
    )
    model_routes: RouteTable = Field(
        default_factory=lambda: RouteTable(routes={}),
        description='Model aliases → backends and fallbacks, JSON: {"routes": {"chat": '
        '{"backends": [{"url": "http://inference:8004/v1", "model": "qwen"}], '
        '"fallbacks": ["chat-small"], "price": {"prompt_per_1k": 0.0005}}}}',
    )
    max_request_bytes: int = Field(
        4 * 2**20, ge=1024, description="Largest chat request body; larger ones get 413."
    )
    exact_cache: bool = Field(True, description="Answer identical requests from the cache.")
    semantic_cache: bool = Field(
        False,
        description="Answer similar questions (same context) from the cache; embeds each "
        "question through the indexer's /v1/embeddings.",
    )
    semantic_cache_threshold: float = Field(
        0.92, gt=0, le=1, description="Cosine similarity from which a question counts as the same."
    )
    cache_ttl_s: float = Field(600.0, gt=0, description="How long a cached answer is served.")
    cache_max_entries: int = Field(10_000, ge=1, description="Exact cache size, per replica.")
    embedding_model: str = Field(
        "all-MiniLM-L6-v2", description="Model the indexer embeds with; used by the semantic cache."
    )
    event_redaction: RedactionPolicy = Field(
        RedactionPolicy.MASKED,
        description="Text in llm.completions events: none (verbatim), masked (PII replaced) "
        "or omitted (no text).",
    )
    tenant_redaction: dict[str, RedactionPolicy] = Field(
        default_factory=dict,
        description='Per-tenant overrides of event_redaction, JSON: {"acme": "omitted"}.',
    )

    @model_validator(mode="after")
    def _strong_admin_key_in_production(self) -> Self:
        key = self.admin_key.get_secret_value()
        if self.environment is Environment.PRODUCTION and (
            len(key) < MIN_ADMIN_KEY_CHARS or key == DEVELOPMENT_ADMIN_KEY
        ):
            msg = (
                f"LLMOPS_ENV=production needs GATEWAY_ADMIN_KEY of at least "
                f"{MIN_ADMIN_KEY_CHARS} characters, not the development default"
            )
            raise ValueError(msg)
        return self

    def redaction_for(self, tenant: str) -> RedactionPolicy:
        return self.tenant_redaction.get(tenant, self.event_redaction)
