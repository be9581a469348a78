"""A SIGKILLed evaluation worker resumes its run: nothing redone, nothing duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from evaluation_stack import evaluation_stack

from llmops.events.catalog import CONTRACTS, ScoreKind, Topic
from llmops.events.codec import EventCodec
from llmops.llm.stub_server import StubBehaviour
from llmops.testing import (
    SettingsFactory,
    free_port,
    headers_of,
    read_topic,
    wait_answering,
    wait_until,
)
from llmops_evaluation.settings import EvaluationSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

ITEMS = 12


def start_evaluation(settings: EvaluationSettings, spool: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "MONGODB_URL": settings.mongodb_url.get_secret_value(),
        "MONGODB_DATABASE": settings.mongodb_database,
        "EVENT_SPOOL_PATH": str(spool),
        "EVALUATION_PORT": str(settings.port),
        "EVALUATION_PROMPTS_URL": settings.prompts_url,
        "EVALUATION_INFERENCE_URL": settings.inference_url,
        "CONSUMER_CONCURRENCY": "2",
    }
    return subprocess.Popen([sys.executable, "-m", "llmops_evaluation"], env=env)


async def test_a_killed_worker_resumes_its_run_without_redoing_or_duplicating(
    service_settings: SettingsFactory, tmp_path: Path
) -> None:
    slow = StubBehaviour(delay_s=0.5)  # one answer at a time: the run takes ~6 s
    async with evaluation_stack(
        service_settings,
        stubs={"echo": slow},
        inference_values={"consumer_concurrency": 1},
        serve_evaluation=False,
        port=free_port(),
    ) as stack:
        settings = stack.settings
        await stack.create_prompt("support", "{{ question }}", label="production")
        worker = start_evaluation(settings, tmp_path / "spool")
        try:
            await wait_answering(f"{stack.evaluation_url}/healthz", worker)
            lines = [
                json.dumps({"item_id": f"q{n:02d}", "input": f"question {n}", "reference": "x"})
                for n in range(ITEMS)
            ]
            await stack.upload("faq", lines)
            body = {
                "dataset": "faq",
                "candidate": {"prompt_name": "support", "model": "echo"},
                "metrics": ["token_f1"],
            }
            run_id = (await stack.evaluation.post("/v1/runs", json=body)).json()["run_id"]

            async def run() -> Any:
                return (await stack.evaluation.get(f"/v1/runs/{run_id}")).json()

            await wait_until(
                lambda: _scored_between(run, 2, ITEMS - 3), timeout=60, what="a run half way"
            )
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)

            worker = start_evaluation(settings, tmp_path / "spool")
            await wait_answering(f"{stack.evaluation_url}/healthz", worker)
            finished = await wait_until(lambda: _finished(run), timeout=120, what="the resumed run")
            items = (await stack.evaluation.get(f"/v1/runs/{run_id}/items")).json()
        finally:
            worker.terminate()
            worker.wait(timeout=30)

    assert finished["state"] == "completed"
    assert finished["counts"] == {"items": ITEMS, "scored": ITEMS, "failed": 0}
    assert [item["item_id"] for item in items] == [f"q{n:02d}" for n in range(ITEMS)]
    # every item was asked of the model once: the restart re-sent none of them
    assert slow.calls == ITEMS

    prefix = settings.kafka_topic_prefix
    requests = await read_topic(
        settings.kafka_bootstrap_servers, f"{prefix}inference.requests", count=ITEMS
    )
    assert len(requests) == ITEMS
    records = await read_topic(
        settings.kafka_bootstrap_servers, f"{prefix}eval.results", count=ITEMS + 1
    )
    codec = EventCodec(CONTRACTS[Topic.EVAL_RESULTS], settings.event_wire_format)
    events = [codec.decode(r.value, headers_of(r)) for r in records]
    # a redelivered result is published again under the same id, never as a new event
    kinds = Counter(e.data.kind for e in {e.id: e for e in events}.values())
    assert kinds == {ScoreKind.ITEM: ITEMS, ScoreKind.AGGREGATE: 1}


async def _scored_between(run: Any, low: int, high: int) -> bool:
    counts = (await run())["counts"]
    return bool(low <= counts["scored"] <= high)


async def _finished(run: Any) -> Any:
    current = await run()
    return current if current["state"] in {"completed", "failed"} else None
