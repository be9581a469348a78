"""The feedback service served in process over real HTTP, Kafka and FerretDB, with builders
for the events it consumes (completions, feedback submissions, online scores)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from llmops.bus import EventBus
from llmops.events.catalog import (
    CONTRACTS,
    CacheResult,
    CallStatus,
    ChatMessage,
    ChatRole,
    CompletionRecorded,
    EvaluationScored,
    FeedbackRecorded,
    FeedbackSubmitted,
    MetricScore,
    PromptRef,
    RedactionPolicy,
    ScoreKind,
    TokenUsage,
    Topic,
)
from llmops.events.codec import EventCodec
from llmops.events.envelope import Envelope, new_event
from llmops.tenancy import TENANT_HEADER
from llmops.testing import SettingsFactory, headers_of, read_topic_until, serving, wait_until
from llmops_feedback.app import create_app
from llmops_feedback.settings import FeedbackSettings

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SYSTEM = "You answer questions about orders."


def day(n: int) -> datetime:
    """Noon of January `n`, 2025."""
    return T0 + timedelta(days=n - 1, hours=12)


def completion(
    completion_id: str,
    *,
    question: str,
    output: str | None,
    tenant: str = "acme",
    at: datetime = T0,
    prompt_version: int | None = 1,
    model: str = "m1",
) -> Envelope[CompletionRecorded]:
    data = CompletionRecorded(
        completion_id=completion_id,
        request_id=f"req-{completion_id}",
        api_key_id="key-app",
        requested_model="chat",
        served_model=model,
        prompt=(
            PromptRef(name="support", version=prompt_version, label="production")
            if prompt_version is not None
            else None
        ),
        messages=[
            ChatMessage(role=ChatRole.SYSTEM, content=SYSTEM),
            ChatMessage(role=ChatRole.USER, content=question),
        ],
        output=output,
        redaction=RedactionPolicy.NONE,
        usage=TokenUsage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        latency_ms=20.0,
        cost_usd=0.0,
        cache=CacheResult.NONE,
        stream=False,
        status=CallStatus.OK if output is not None else CallStatus.ERROR,
        trace_id=hashlib.sha256(completion_id.encode()).hexdigest()[:32],
    )
    return new_event(
        CONTRACTS[Topic.LLM_COMPLETIONS],
        data,
        source="gateway",
        tenant=tenant,
        subject=completion_id,
        time=at,
    )


def submission(
    completion_id: str,
    user_id: str,
    *,
    tenant: str = "acme",
    at: datetime | None = None,
    **fields: Any,
) -> Envelope[FeedbackSubmitted]:
    return new_event(
        CONTRACTS[Topic.FEEDBACK_EVENTS],
        FeedbackSubmitted(completion_id=completion_id, user_id=user_id, **fields),
        source="gateway",
        tenant=tenant,
        subject=completion_id,
        time=at,
    )


def online_scores(
    completion_id: str,
    scores: dict[str, float],
    *,
    tenant: str = "acme",
    kind: ScoreKind = ScoreKind.ONLINE,
) -> Envelope[EvaluationScored]:
    return new_event(
        CONTRACTS[Topic.EVAL_RESULTS],
        EvaluationScored(
            kind=kind,
            run_id=None if kind is ScoreKind.ONLINE else "run-1",
            completion_id=completion_id,
            scores=[MetricScore(metric=m, value=v) for m, v in scores.items()],
        ),
        source="evaluation",
        tenant=tenant,
        subject=completion_id,
    )


@dataclass
class FeedbackStack:
    url: str
    http: httpx.AsyncClient
    app: FastAPI
    settings: FeedbackSettings

    @property
    def bus(self) -> EventBus:
        bus: EventBus = self.app.state.context.bus
        return bus

    async def publish(self, *events: Envelope[Any]) -> None:
        for event in events:
            await self.bus.publish(event)

    async def get(self, path: str, *, tenant: str = "acme", **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers={TENANT_HEADER: tenant})

    async def post(self, path: str, body: Any, *, tenant: str = "acme") -> httpx.Response:
        return await self.http.post(path, json=body, headers={TENANT_HEADER: tenant})

    async def stored(self, *completion_ids: str, tenant: str = "acme") -> None:
        """Wait until the service has stored these completions."""

        async def all_there() -> bool:
            for completion_id in completion_ids:
                if (await self.get(f"/v1/completions/{completion_id}", tenant=tenant)).is_error:
                    return False
            return True

        await wait_until(all_there, timeout=60, what=f"completions {completion_ids}")

    async def feedback_of(
        self, completion_id: str, *, tenant: str = "acme"
    ) -> list[dict[str, Any]]:
        response = await self.get(f"/v1/completions/{completion_id}/feedback", tenant=tenant)
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()
        return records

    async def export(
        self, kind: str, *, tenant: str = "acme", **params: Any
    ) -> list[dict[str, Any]]:
        response = await self.get(f"/v1/exports/{kind}", tenant=tenant, **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in response.text.splitlines()]

    async def recorded_until(
        self, done: Any, *, timeout: float = 60
    ) -> list[Envelope[FeedbackRecorded]]:
        """`feedback.recorded` events from the start until `done(events)` holds."""
        codec = EventCodec(CONTRACTS[Topic.FEEDBACK_RECORDED], self.settings.event_wire_format)

        def decoded(records: list[Any]) -> list[Envelope[FeedbackRecorded]]:
            return [codec.decode(r.value, headers_of(r)) for r in records]

        records = await read_topic_until(
            self.settings.kafka_bootstrap_servers,
            f"{self.settings.kafka_topic_prefix}{Topic.FEEDBACK_RECORDED}",
            lambda records: bool(done(decoded(records))),
            timeout=timeout,
        )
        return decoded(records)


@asynccontextmanager
async def feedback_service(
    service_settings: SettingsFactory, **values: Any
) -> AsyncIterator[FeedbackStack]:
    settings = service_settings(FeedbackSettings, **values)
    app = create_app(settings)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        yield FeedbackStack(url, http, app, settings)
