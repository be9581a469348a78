"""Online evaluation of production completions, and replaying them against a candidate."""

from __future__ import annotations

import json
from typing import Any

import pytest
from evaluation_stack import evaluation_stack

from llmops.events.catalog import (
    CONTRACTS,
    CacheResult,
    CallStatus,
    ChatMessage,
    ChatRole,
    CompletionRecorded,
    PromptRef,
    RedactionPolicy,
    RetrievedChunk,
    ScoreKind,
    TokenUsage,
    Topic,
)
from llmops.events.codec import EventCodec
from llmops.llm.stub_server import StubBehaviour
from llmops.testing import SettingsFactory, headers_of, read_topic, wait_until
from llmops_evaluation.online import sampled

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

COMPLETIONS = CONTRACTS[Topic.LLM_COMPLETIONS]
RESULTS = CONTRACTS[Topic.EVAL_RESULTS]
RATE = 0.3
PASSAGE = "Orders ship from Rotterdam within two working days."


def completion(number: int, *, grounded: bool, tags: list[str]) -> CompletionRecorded:
    question = f"question number {number} about shipping"
    output = (
        f"echo: {question}"
        if "replay" in tags
        else (
            "Orders ship from Rotterdam within two working days."
            if grounded
            else "We deliver by drone from the moon every hour."
        )
    )
    return CompletionRecorded(
        completion_id=f"chatcmpl-{number:05d}",
        request_id=f"req-{number}",
        api_key_id="key-1",
        requested_model="chat",
        served_model="echo",
        prompt=PromptRef(name="support", version=1, label="production"),
        retrieved_chunks=[
            RetrievedChunk(chunk_id="c1", document_id="d1", collection="kb", score=0.9)
        ],
        messages=[
            ChatMessage(role=ChatRole.SYSTEM, content=f"Use these passages:\n[1] {PASSAGE}"),
            ChatMessage(role=ChatRole.USER, content=question),
        ],
        output=output,
        redaction=RedactionPolicy.NONE,
        usage=TokenUsage(prompt_tokens=10, completion_tokens=8, total_tokens=18),
        latency_ms=12.0,
        cost_usd=0.0001,
        cache=CacheResult.NONE,
        stream=False,
        status=CallStatus.OK,
        tags=tags,
        trace_id=f"{number:032x}",
    )


async def test_a_share_of_completions_is_scored_online_and_replays_compare_with_production(
    service_settings: SettingsFactory,
) -> None:
    count = 200
    events = [
        completion(n, grounded=n % 2 == 0, tags=["replay"] if n < 6 else ["live"])
        for n in range(count)
    ]
    expected = [e for e in events if sampled(e.completion_id, RATE)]
    assert abs(len(expected) / count - RATE) < 0.08  # the hash spreads ids evenly

    async with evaluation_stack(
        service_settings, stubs={"echo": StubBehaviour()}, online_sample_rate=RATE
    ) as stack:
        assert stack.evaluation_app is not None
        bus = stack.evaluation_app.state.context.bus
        for event in events:
            await bus.emit(COMPLETIONS, event, tenant="acme", subject=event.completion_id)
        settings = stack.settings
        records = await read_topic(
            settings.kafka_bootstrap_servers,
            f"{settings.kafka_topic_prefix}eval.results",
            count=len(expected),
            timeout=120,
        )

        await stack.create_prompt("support", "{{ question }}", label="production")
        headers = {"X-LLMOps-Tenant": "acme"}

        async def replay_candidate() -> Any:
            body = {
                "filter": {"tags": ["replay"]},
                "candidate": {"prompt_name": "support", "prompt_version": 1, "model": "echo"},
                "metrics": ["token_f1", "rougeL"],
            }
            response = await stack.evaluation.post("/v1/replays", json=body, headers=headers)
            # completions are logged while the scores above are published: wait for all six
            if response.status_code == 202 and response.json()["dataset"]["items"] == 6:
                return response.json()
            return None

        replay = await wait_until(replay_candidate, timeout=60, interval=0.5, what="a replay")
        run_id = replay["run"]["run_id"]

        async def finished() -> Any:
            run = (await stack.evaluation.get(f"/v1/runs/{run_id}", headers=headers)).json()
            return run if run["state"] in {"completed", "failed"} else None

        run = await wait_until(finished, timeout=120, what="the replay run")

    codec = EventCodec(RESULTS, settings.event_wire_format)
    scores = [codec.decode(record.value, headers_of(record)) for record in records]
    assert {e.data.completion_id for e in scores} == {e.completion_id for e in expected}
    assert all(e.data.kind is ScoreKind.ONLINE and e.tenant == "acme" for e in scores)
    by_id = {e.completion_id: e for e in events}
    for scored in scores:
        source = by_id[scored.data.completion_id or ""]
        values = {s.metric: s.value for s in scored.data.scores}
        assert set(values) == {"groundedness", "pii_leak", "toxicity"}
        grounded = source.output == PASSAGE
        if "replay" not in source.tags:
            assert values["groundedness"] == (1.0 if grounded else 0.0)
        assert scored.data.details["trace_id"] == source.trace_id
        assert scored.data.details["prompt"] == "support@1"

    assert run["state"] == "completed", run
    assert replay["dataset"]["source"] == "replay"
    means = {score["metric"]: score["mean"] for score in run["aggregate"]}
    assert means == {"token_f1": 1.0, "rougeL": 1.0}  # the candidate answers as production did


async def test_dataset_from_completions_selects_by_filter(
    service_settings: SettingsFactory,
) -> None:
    async with evaluation_stack(service_settings, online_sample_rate=0.0) as stack:
        assert stack.evaluation_app is not None
        bus = stack.evaluation_app.state.context.bus
        events = [
            completion(n, grounded=True, tags=["vip"] if n % 3 == 0 else []) for n in range(9)
        ]
        for event in events:
            await bus.emit(COMPLETIONS, event, tenant="default", subject=event.completion_id)

        async def selected() -> Any:
            response = await stack.evaluation.post(
                "/v1/datasets/vip/versions/from-completions",
                json={"filter": {"tags": ["vip"], "prompt_name": "support", "prompt_version": 1}},
            )
            # the consumer logs completions as they arrive: select once all three are there
            if response.status_code == 201 and response.json()["items"] == 3:
                return response.json()
            return None

        version = await wait_until(selected, timeout=60, interval=0.5, what="a selection")
        exported = (await stack.evaluation.get("/v1/datasets/vip/export")).text

    items = [json.loads(line) for line in exported.splitlines()]
    assert version["source"] == "completions"
    assert [item["item_id"] for item in items] == [f"chatcmpl-{n:05d}" for n in (0, 3, 6)]
    first = items[0]
    assert first["messages"] == [{"role": "user", "content": "question number 0 about shipping"}]
    assert first["reference"] == PASSAGE
    assert first["metadata"]["prompt"] == "support@1"
