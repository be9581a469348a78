"""Settings of this service: its own env prefix, shared infrastructure variables unprefixed."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llmops.settings import Port, ServiceSettings


class FeedbackSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACK_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "feedback"
    port: Port = 8007
    review_feedback_below: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Feedback whose normalised score is under this sends its completion to "
        "the annotation queue (thumbs down, ratings 1 and 2 by default); so does any "
        "corrected answer.",
    )
    review_score_below: dict[str, float] = Field(
        default_factory=lambda: {"groundedness": 0.5},
        description="Online evaluation scores (eval.results, kind online) that send a "
        'completion to the annotation queue, per metric, JSON: {"groundedness": 0.5} (a '
        "value under the threshold queues it; metrics not named are ignored).",
    )
