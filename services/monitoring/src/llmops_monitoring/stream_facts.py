"""What the monitoring service reads out of each event, fast.

`llm.completions` carries nearly all the traffic, so its events are not validated in full
(a pydantic parse of a 1.5 KB envelope costs more than everything else the service does
with it): `completion_from_json` parses the JSON once and checks the type of every field
it reads, and anything unexpected raises `UnreadableEvent`. The caller then decodes the
record with the topic's codec, which either accepts it (an older schema version that is
upcast, an Avro record) or says precisely what is wrong, for the dead-letter topic. The
other topics are low volume and always go through the codec (ADR 13).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic_core

from llmops.events.catalog import (
    CacheResult,
    CallStatus,
    CompletionRecorded,
    EvaluationScored,
    FeedbackRecorded,
    IngestJobProgress,
    IngestOutcome,
    ScoreKind,
)
from llmops.events.envelope import Envelope
from llmops_monitoring.drift import is_refusal
from llmops_monitoring.rollups import UNKNOWN, CompletionFacts, Dimensions, completion_facts

_COMPLETION_TYPE = "CompletionRecorded"
_COMPLETION_VERSION = 1
_CACHE = {result.value: result for result in CacheResult}
QUESTION_CHARS = 1_000
"""Drift samples keep this much of the user's question."""


class UnreadableEvent(ValueError):
    """The fast path cannot read this record; decode it with the codec instead."""


@dataclass(frozen=True, slots=True)
class DriftSample:
    """What drift checks compare for one completion (kept for a sampled share)."""

    completion_id: str
    tenant: str
    time: datetime
    model: str
    prompt: str
    collection: str
    question: str
    retrieval_scores: tuple[float, ...]
    answer_chars: int | None
    refused: bool

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.completion_id,
            "tenant": self.tenant,
            "time": self.time,
            "model": self.model,
            "prompt": self.prompt,
            "collection": self.collection,
            "question": self.question,
            "retrieval_scores": list(self.retrieval_scores),
            "answer_chars": self.answer_chars,
            "refused": self.refused,
        }


@dataclass(frozen=True, slots=True)
class CompletionRead:
    """One completion event as monitoring uses it."""

    event_id: str
    facts: CompletionFacts
    sample: DriftSample | None


def sampled(completion_id: str, rate: float) -> bool:
    """Deterministic hash sampling: the same completion is in or out on every replica."""
    if rate >= 1.0:
        return True
    return (zlib.crc32(completion_id.encode()) & 0xFFFFFFFF) < rate * 2**32


def completion_from_json(value: bytes) -> CompletionRead:
    """Read a JSON `llm.completions` record of the current schema version, or raise; an
    answered completion comes with its drift sample (the caller decides whether to keep it)."""
    try:
        raw = pydantic_core.from_json(value)
        if raw["type"] != _COMPLETION_TYPE or raw["schema_version"] != _COMPLETION_VERSION:
            raise UnreadableEvent("not a current CompletionRecorded")
        data = raw["data"]
        event_id = _text(raw["id"])
        tenant = _text(raw["tenant"])
        time = datetime.fromisoformat(_text(raw["time"]))
        if time.tzinfo is None:
            raise UnreadableEvent("naive time")
        completion_id = _text(data["completion_id"])
        usage = data["usage"]
        prompt = data.get("prompt")
        status = data["status"]
        failed = status == CallStatus.ERROR.value
        if not failed and status != CallStatus.OK.value:
            raise UnreadableEvent(f"unknown status {status!r}")
        output = data.get("output")
        if output is not None and not isinstance(output, str):
            raise UnreadableEvent("output is not text")
        error = data.get("error")
        ttft = data.get("time_to_first_token_ms")
        dimensions = Dimensions(
            tenant=tenant,
            model=_text(data["served_model"]) or UNKNOWN,
            prompt=UNKNOWN
            if prompt is None
            else f"{_text(prompt['name'])}@{_int(prompt['version'])}",
            api_key_id=_text(data["api_key_id"]) or UNKNOWN,
        )
        refused = not failed and is_refusal(output)
        facts = CompletionFacts(
            time=time,
            dimensions=dimensions,
            latency_ms=_number(data["latency_ms"]),
            ttft_ms=None if ttft is None else _number(ttft),
            prompt_tokens=_int(usage["prompt_tokens"]),
            completion_tokens=_int(usage["completion_tokens"]),
            cost_usd=_number(data["cost_usd"]),
            cache=_CACHE[data["cache"]],
            failed=failed,
            error_code=_text(error["code"]) if failed and error is not None else None,
            refused=refused,
        )
        sample = None if failed else _drift_sample(completion_id, facts, data, output, refused)
    except UnreadableEvent:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UnreadableEvent(repr(exc)) from exc
    return CompletionRead(event_id, facts, sample)


def completion_from_event(event: Envelope[CompletionRecorded]) -> CompletionRead:
    """The same reading from an event the codec decoded (slow path)."""
    facts = completion_facts(event)
    data = event.data
    sample = None
    if not facts.failed:
        raw = data.model_dump(mode="json")
        sample = _drift_sample(data.completion_id, facts, raw, data.output, facts.refused)
    return CompletionRead(event.id, facts, sample)


def _drift_sample(
    completion_id: str,
    facts: CompletionFacts,
    data: dict[str, Any],
    output: str | None,
    refused: bool,
) -> DriftSample:
    question = ""
    for message in reversed(data.get("messages") or []):
        if message["role"] == "user":
            question = _text(message["content"])[:QUESTION_CHARS]
            break
    chunks = data.get("retrieved_chunks") or []
    return DriftSample(
        completion_id=completion_id,
        tenant=facts.dimensions.tenant,
        time=facts.time,
        model=facts.dimensions.model,
        prompt=facts.dimensions.prompt,
        collection=_text(chunks[0]["collection"]) if chunks else UNKNOWN,
        question=question,
        retrieval_scores=tuple(_number(chunk["score"]) for chunk in chunks),
        answer_chars=None if output is None else len(output),
        refused=refused,
    )


# ---- the low-volume topics (always decoded by the codec) -----------------------------------


@dataclass(frozen=True, slots=True)
class ScoreRead:
    time: datetime
    dimensions: Dimensions
    scores: tuple[tuple[str, float], ...]


def online_scores(event: Envelope[EvaluationScored]) -> ScoreRead | None:
    """Online scores of a production completion, attributed from the evaluator's details;
    offline run scores are about datasets, not traffic, and are not rolled up."""
    data = event.data
    if data.kind is not ScoreKind.ONLINE:
        return None
    details = data.details
    dimensions = Dimensions(
        tenant=event.tenant,
        model=details.get("model") or UNKNOWN,
        prompt=details.get("prompt") or UNKNOWN,
        api_key_id=details.get("api_key_id") or UNKNOWN,
    )
    scores = tuple((score.metric, score.value) for score in data.scores)
    return ScoreRead(event.time, dimensions, scores)


@dataclass(frozen=True, slots=True)
class FeedbackRead:
    time: datetime
    dimensions: Dimensions
    score: float


def feedback_score(event: Envelope[FeedbackRecorded]) -> FeedbackRead | None:
    """A first feedback with a score (updates would count a user twice)."""
    data = event.data
    if not data.created or data.score is None:
        return None
    dimensions = Dimensions(
        tenant=event.tenant,
        model=data.served_model or UNKNOWN,
        prompt=data.prompt or UNKNOWN,
        api_key_id=data.api_key_id or UNKNOWN,
    )
    return FeedbackRead(event.time, dimensions, data.score)


@dataclass(frozen=True, slots=True)
class IngestRead:
    time: datetime
    tenant: str
    documents: int
    failed: int


def ingest_outcome(event: Envelope[IngestJobProgress]) -> IngestRead | None:
    """A document finished indexing or failed (job-level updates carry no item)."""
    item = event.data.item
    if item is None or item.outcome is IngestOutcome.SKIPPED:
        return None
    done = item.outcome is IngestOutcome.INDEXED
    return IngestRead(event.time, event.tenant, documents=int(done), failed=int(not done))


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise UnreadableEvent(f"expected text, got {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UnreadableEvent(f"expected an integer, got {type(value).__name__}")
    return value


def _number(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise UnreadableEvent(f"expected a number, got {type(value).__name__}")
    return float(value)


__all__ = [
    "CompletionRead",
    "DriftSample",
    "FeedbackRead",
    "IngestRead",
    "ScoreRead",
    "UnreadableEvent",
    "completion_from_event",
    "completion_from_json",
    "feedback_score",
    "ingest_outcome",
    "online_scores",
    "sampled",
]
