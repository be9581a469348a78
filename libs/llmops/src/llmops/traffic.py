"""Synthetic `llm.completions` traffic with known values, for benchmarks and tests.

`CompletionTraffic` makes reproducible events (a seed) spread over tenants, models,
prompt versions and API keys, priced from a table, and remembers what it made so a test
can compute the exact answer a consumer should reach.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from llmops.events.catalog import (
    CONTRACTS,
    CacheResult,
    CallStatus,
    ChatMessage,
    ChatRole,
    CompletionRecorded,
    ErrorInfo,
    FinishReason,
    PromptRef,
    RedactionPolicy,
    RetrievedChunk,
    TokenUsage,
    Topic,
)
from llmops.events.envelope import Envelope, new_event

COMPLETIONS = CONTRACTS[Topic.LLM_COMPLETIONS]
PRICES_PER_1K: dict[str, tuple[float, float]] = {
    "model-a": (0.0005, 0.0015),
    "model-b": (0.003, 0.006),
    "model-c": (0.0001, 0.0002),
}
"""US dollars per 1,000 prompt and completion tokens, by served model."""


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Cost of a call from `PRICES_PER_1K`."""
    per_prompt, per_completion = PRICES_PER_1K[model]
    return (prompt_tokens * per_prompt + completion_tokens * per_completion) / 1000


@dataclass
class CompletionTraffic:
    """Reproducible completions from `start`, one every `spacing`."""

    start: datetime
    seed: int = 7
    tenants: Sequence[str] = ("acme", "globex")
    models: Sequence[str] = tuple(PRICES_PER_1K)
    keys: Sequence[str] = ("key-1", "key-2", "key-3")
    spacing: timedelta = timedelta(milliseconds=50)
    error_every: int = 0
    """Every n-th call fails (0: none)."""
    made: list[Envelope[CompletionRecorded]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311  # reproducible test data, not secrets

    def events(self, count: int) -> list[Envelope[CompletionRecorded]]:
        """The next `count` events (also appended to `made`)."""
        made = [self._event(len(self.made) + n) for n in range(count)]
        self.made.extend(made)
        return made

    def _event(self, n: int) -> Envelope[CompletionRecorded]:
        rng = self._rng
        model = self.models[n % len(self.models)]
        failed = self.error_every > 0 and n % self.error_every == self.error_every - 1
        prompt_tokens = rng.randint(20, 400)
        completion_tokens = 0 if failed else rng.randint(5, 300)
        completion_id = f"chatcmpl-{uuid.UUID(int=rng.getrandbits(128)).hex}"
        data = CompletionRecorded(
            completion_id=completion_id,
            request_id=uuid.UUID(int=rng.getrandbits(128)).hex,
            api_key_id=self.keys[n % len(self.keys)],
            requested_model="default",
            served_model=model,
            prompt=PromptRef(name="support", version=1 + n % 2),
            retrieved_chunks=[
                RetrievedChunk(
                    chunk_id=f"c{n % 97}", document_id="handbook", collection="kb", score=0.8
                )
            ],
            messages=[
                ChatMessage(role=ChatRole.SYSTEM, content="You answer questions about our app."),
                ChatMessage(role=ChatRole.USER, content=f"How do I rotate API key number {n}?"),
            ],
            output=None if failed else "Open Settings, then Keys, and press Rotate. " * 5,
            redaction=RedactionPolicy.NONE,
            finish_reason=None if failed else FinishReason.STOP,
            usage=TokenUsage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
            latency_ms=rng.lognormvariate(5.5, 0.6),
            time_to_first_token_ms=rng.lognormvariate(3.5, 0.4),
            cost_usd=price(model, prompt_tokens, completion_tokens),
            cache=CacheResult.EXACT if n % 10 == 3 else CacheResult.NONE,
            stream=True,
            status=CallStatus.ERROR if failed else CallStatus.OK,
            error=ErrorInfo(code="upstream_timeout", message="timed out") if failed else None,
            trace_id=uuid.UUID(int=rng.getrandbits(128)).hex,
        )
        return new_event(
            COMPLETIONS,
            data,
            source="gateway",
            tenant=self.tenants[n % len(self.tenants)],
            subject=completion_id,
            time=self.start + self.spacing * n,
        )


__all__ = ["COMPLETIONS", "PRICES_PER_1K", "CompletionTraffic", "price"]
