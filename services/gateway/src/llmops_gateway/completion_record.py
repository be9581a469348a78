"""What the gateway remembers of one chat call, and the `llm.completions` event made from it.

The record is filled in as the call goes (prompt, retrieved chunks, final messages,
output, usage, first token, cache outcome, error); `completion_event` turns it into the
event with the tenant's redaction policy applied to the text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llmops.events.catalog import (
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
)
from llmops.llm import chat
from llmops.rag.search import SearchHit
from llmops.redaction import redact_pii

_FINISH_REASONS = {reason.value: reason for reason in FinishReason}


@dataclass
class CompletionRecord:
    completion_id: str
    request_id: str
    api_key_id: str
    tenant: str
    requested_model: str
    stream: bool
    user: str | None = None
    session_id: str | None = None
    tags: list[str] = field(default_factory=list)
    trace_id: str | None = None
    started: float = field(default_factory=time.perf_counter)
    served_model: str = ""
    prompt: PromptRef | None = None
    collection: str | None = None
    hits: list[SearchHit] = field(default_factory=list)
    messages: list[chat.ChatMessage] = field(default_factory=list)
    output: str | None = None
    finish_reason: str | None = None
    usage: chat.Usage = field(default_factory=chat.Usage)
    first_token_at: float | None = None
    cache: CacheResult = CacheResult.NONE
    cost_usd: float = 0.0
    error: ErrorInfo | None = None

    def first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def fail(self, code: str, message: str) -> None:
        self.error = ErrorInfo(code=code, message=message[:500])

    def elapsed_ms(self, since: float | None = None) -> float:
        return round(((since or time.perf_counter()) - self.started) * 1000, 3)


def completion_event(
    record: CompletionRecord, policy: RedactionPolicy, *, finished: float | None = None
) -> CompletionRecorded:
    """The event for a finished (or failed, or abandoned) call, text redacted per `policy`."""
    messages = [
        ChatMessage(role=ChatRole(message.role), content=_redact(message.text(), policy) or "")
        for message in record.messages
    ]
    output = None if record.output is None else _redact(record.output, policy)
    finish = _FINISH_REASONS.get(record.finish_reason or "")
    return CompletionRecorded(
        completion_id=record.completion_id,
        request_id=record.request_id,
        api_key_id=record.api_key_id,
        requested_model=record.requested_model,
        served_model=record.served_model or "none",
        prompt=record.prompt,
        retrieved_chunks=[
            RetrievedChunk(
                chunk_id=hit.chunk_id,
                document_id=hit.document_id,
                collection=record.collection or "",
                score=hit.score,
            )
            for hit in record.hits
        ],
        messages=messages,
        output=output,
        redaction=policy,
        finish_reason=finish,
        usage=TokenUsage(
            prompt_tokens=record.usage.prompt_tokens,
            completion_tokens=record.usage.completion_tokens,
            total_tokens=record.usage.total_tokens,
        ),
        latency_ms=record.elapsed_ms(finished),
        time_to_first_token_ms=(
            record.elapsed_ms(record.first_token_at)
            if record.stream and record.first_token_at is not None
            else None
        ),
        cost_usd=record.cost_usd,
        cache=record.cache,
        stream=record.stream,
        status=CallStatus.ERROR if record.error is not None else CallStatus.OK,
        error=record.error,
        user=record.user,
        session_id=record.session_id,
        tags=record.tags,
        trace_id=record.trace_id,
    )


def _redact(text: str, policy: RedactionPolicy) -> str | None:
    if policy is RedactionPolicy.OMITTED:
        return None
    if policy is RedactionPolicy.MASKED:
        return redact_pii(text).text
    return text
