"""The Kafka batch worker: `inference.requests` in, `inference.results` out.

Used by evaluation runs and bulk jobs. Every request gets exactly one result event per
(tenant, request_id): its id is derived from them, so a redelivered request (a crash
before the commit) or a caller re-sending the same request id publishes an event
consumers recognise as the same. A request the platform cannot serve (unknown or
retired model, prompt over the context, upstream refusal) is answered with an error
result, since the caller waits for one; only failures to publish are retried by the bus.
"""

from __future__ import annotations

import time
import uuid

from llmops.bus import EventBus
from llmops.events.catalog import (
    CONTRACTS,
    CallStatus,
    ErrorInfo,
    FinishReason,
    InferenceCompleted,
    InferenceRequested,
    TokenUsage,
    Topic,
)
from llmops.events.envelope import Envelope
from llmops.llm.errors import ApiError
from llmops.telemetry import get_logger
from llmops_inference.engine_pool import EnginePool
from llmops_inference.engines.base import ChatTurn, GenerationRequest, collect

RESULTS = CONTRACTS[Topic.INFERENCE_RESULTS]
REQUESTS = CONTRACTS[Topic.INFERENCE_REQUESTS]
_EVENT_FINISH = {reason.value: reason for reason in FinishReason}
_RESULT_IDS = uuid.UUID("0b6f3f3e-59f4-4d52-9a55-6a8f1d1c2e71")  # namespace of result event ids

_log = get_logger(__name__)


def result_event_id(tenant: str, request_id: str) -> str:
    """The id of the one result event answering `request_id` of `tenant`."""
    return str(uuid.uuid5(_RESULT_IDS, f"{tenant}\x00{request_id}"))


class BatchWorker:
    """Answers inference requests from Kafka with the same engines as the HTTP API."""

    def __init__(self, pool: EnginePool, bus: EventBus) -> None:
        self._pool = pool
        self._bus = bus

    def subscribe(self) -> None:
        self._bus.subscribe(REQUESTS, self.handle)

    async def handle(self, event: Envelope[InferenceRequested]) -> None:
        request = event.data
        started = time.perf_counter()
        try:
            result = await self._run(request)
        except ApiError as exc:
            _log.warning(
                "inference request failed",
                request_id=request.request_id,
                model=request.model,
                status=exc.status,
                error=exc.message,
            )
            result = InferenceCompleted(
                request_id=request.request_id,
                model=request.model,
                usage=TokenUsage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
                latency_ms=0.0,
                status=CallStatus.ERROR,
                error=ErrorInfo(code=exc.code or f"http_{exc.status}", message=exc.message[:1000]),
                run_id=request.run_id,
                item_id=request.item_id,
                metadata=request.metadata,
            )
        result = result.model_copy(update={"latency_ms": (time.perf_counter() - started) * 1000})
        await self._bus.emit(
            RESULTS,
            result,
            tenant=event.tenant,
            subject=request.request_id,
            event_id=result_event_id(event.tenant, request.request_id),
        )

    async def _run(self, request: InferenceRequested) -> InferenceCompleted:
        sampling = request.sampling
        generation = GenerationRequest(
            messages=[ChatTurn(m.role.value, m.content) for m in request.messages],
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop=sampling.stop,
            seed=sampling.seed,
            stream=False,
        )
        if not generation.messages:
            raise ApiError(400, "the request has no messages", code="invalid_request")
        if sampling.max_tokens is not None and sampling.max_tokens < 1:
            raise ApiError(400, "sampling.max_tokens must be at least 1", code="invalid_request")
        # Bulk work waits for its model however long loading takes (wait_s=None).
        deltas = await self._pool.open_stream(request.model, generation, wait_s=None)
        text, finish, usage = await collect(deltas)
        return InferenceCompleted(
            request_id=request.request_id,
            model=request.model,
            output=text,
            finish_reason=_EVENT_FINISH.get(finish),
            usage=TokenUsage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
            ),
            latency_ms=0.0,
            status=CallStatus.OK,
            run_id=request.run_id,
            item_id=request.item_id,
            metadata=request.metadata,
        )
