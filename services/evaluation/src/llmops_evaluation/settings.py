"""Settings of this service: its own env prefix, shared infrastructure variables unprefixed."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llmops.settings import Port, ServiceSettings


class EvaluationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EVALUATION_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "evaluation"
    port: Port = 8005
    prompts_url: str = Field(
        "http://127.0.0.1:8003", description="The prompt registry: candidates and judge rubrics."
    )
    indexer_url: str = Field(
        "http://127.0.0.1:8002", description="The retrieval API, for candidates with RAG."
    )
    inference_url: str = Field(
        "http://127.0.0.1:8004",
        description="The inference service's OpenAI-compatible API, which the LLM judge calls.",
    )
    feedback_url: str = Field(
        "http://127.0.0.1:8007",
        description="The feedback service, whose SFT export (corrected and approved answers) "
        "datasets are made from.",
    )
    judge_model: str | None = Field(
        None,
        description="Model (inference registry name) of the LLM judge; empty: judge metrics "
        "are refused with a clear error.",
    )
    embedding_model: str = Field(
        "all-MiniLM-L6-v2", description="Encoder of the embedding_similarity metric."
    )
    default_max_tokens: int = Field(
        256, ge=1, description="max_tokens of candidate calls whose prompt sets none."
    )
    online_sample_rate: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of llm.completions scored online."
    )
    online_sample_rates: dict[str, float] = Field(
        default_factory=dict,
        description='Per prompt version, overriding the default: {"support@3": 0.5, "support": '
        '0.2} (name@version first, then name; "-" is calls without a managed prompt).',
    )
    online_metrics: list[str] = Field(
        default_factory=lambda: ["groundedness", "pii_leak", "toxicity"],
        description="Reference-free metrics scored online; add faithfulness or "
        "answer_relevance to ask the LLM judge too.",
    )
