"""Evaluation runs through the real broker: fan-out on inference.requests, scores back on
eval.results, comparisons and the CI gate."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from evaluation_stack import EvaluationStack, evaluation_stack

from llmops.cli.main import main as cli
from llmops.events.catalog import CONTRACTS, ScoreKind, Topic
from llmops.events.codec import EventCodec
from llmops.llm.stub_server import StubBehaviour
from llmops.testing import SettingsFactory, headers_of, read_topic, wait_until
from llmops_evaluation.metrics import score_lexical
from llmops_inference.toy_model import build_toy_chat_model

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

RESULTS = CONTRACTS[Topic.EVAL_RESULTS]
QUESTIONS = {
    "q1": "where is my order",
    "q2": "how do I reset my password",
    "q3": "can I get a refund after thirty days",
    "q4": "do you ship to Norway",
    "q5": "how long does delivery take",
}


async def finished_run(stack: EvaluationStack, run_id: str, *, timeout: float = 120) -> Any:
    async def finished() -> Any:
        run = (await stack.evaluation.get(f"/v1/runs/{run_id}")).json()
        return run if run["state"] in {"completed", "failed"} else None

    return await wait_until(finished, timeout=timeout, interval=0.2, what=f"run {run_id}")


async def start_run(stack: EvaluationStack, candidate: dict[str, Any], metrics: list[str]) -> str:
    body = {"dataset": "faq", "candidate": candidate, "metrics": metrics}
    response = await stack.evaluation.post("/v1/runs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["run_id"])


async def test_a_run_answers_every_item_with_the_toy_model_and_publishes_its_scores(
    service_settings: SettingsFactory, tmp_path: Path
) -> None:
    model_dir = build_toy_chat_model(tmp_path / "model")
    metrics = ["exact_match", "token_f1", "bleu", "chrf", "rougeL", "pii_leak"]
    async with evaluation_stack(
        service_settings,
        models=[{"name": "toy", "engine": "transformers", "source": str(model_dir)}],
    ) as stack:
        await stack.create_prompt("support", "{{ question }}", label="production")
        lines = [
            json.dumps(
                {"item_id": item_id, "input": question, "reference": f"answer to {question}"}
            )
            for item_id, question in list(QUESTIONS.items())[:4]
        ]
        dataset = await stack.upload("faq", lines)
        assert (dataset["version"], dataset["items"]) == (1, 4)
        candidate = {"prompt_name": "support", "prompt_label": "production", "model": "toy"}
        run_id = await start_run(stack, candidate, metrics)
        run = await finished_run(stack, run_id)
        items = (await stack.evaluation.get(f"/v1/runs/{run_id}/items")).json()

    assert run["state"] == "completed", run
    assert run["counts"] == {"items": 4, "scored": 4, "failed": 0}
    assert run["prompt_version"] == 1
    assert [item["item_id"] for item in items] == ["q1", "q2", "q3", "q4"]
    for item in items:
        assert item["status"] == "ok"
        assert item["output"]
        reference = f"answer to {QUESTIONS[item['item_id']]}"
        expected = score_lexical(metrics[:-1], item["output"], reference)
        assert item["scores"] == pytest.approx(expected | {"pii_leak": 0.0})
    aggregate = {score["metric"]: score for score in run["aggregate"]}
    assert set(aggregate) == set(metrics)
    for metric, score in aggregate.items():
        values = [item["scores"][metric] for item in items]
        assert score["mean"] == pytest.approx(sum(values) / len(values))
        assert score["ci_low"] <= score["mean"] <= score["ci_high"]
        assert score["items"] == 4

    settings = stack.settings
    records = await read_topic(
        settings.kafka_bootstrap_servers, f"{settings.kafka_topic_prefix}eval.results", count=5
    )
    codec = EventCodec(RESULTS, settings.event_wire_format)
    events = [codec.decode(record.value, headers_of(record)) for record in records]
    assert sorted(e.data.kind for e in events) == [ScoreKind.AGGREGATE] + [ScoreKind.ITEM] * 4
    assert len({e.id for e in events}) == 5
    assert all(e.subject == run_id and e.data.run_id == run_id for e in events)
    final = next(e.data for e in events if e.data.kind is ScoreKind.AGGREGATE)
    assert {s.metric: s.value for s in final.scores} == pytest.approx(
        {metric: score["mean"] for metric, score in aggregate.items()}
    )


async def test_gate_fails_a_regressing_candidate_and_passes_an_equal_one(
    service_settings: SettingsFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with evaluation_stack(service_settings, stubs={"echo": StubBehaviour()}) as stack:
        await stack.create_prompt("support", "{{ question }}", label="production")
        await stack.create_prompt(
            "support", "{{ question }}, and tell me about the weather at length", label="staging"
        )
        await stack.upload(
            "faq",
            [
                json.dumps({"item_id": i, "input": q, "reference": f"echo: {q}"})
                for i, q in QUESTIONS.items()
            ],
        )

        def gate(candidate: str) -> int:
            return cli(
                [
                    "eval",
                    "gate",
                    "--url",
                    stack.evaluation_url,
                    "--dataset",
                    "faq",
                    "--baseline",
                    "support@production",
                    "--candidate",
                    candidate,
                    "--model",
                    "echo",
                    "--metric",
                    "rougeL",
                    "--max-regression",
                    "0.01",
                    "--timeout",
                    "120",
                ]
            )

        capsys.readouterr()
        regressed = await asyncio.to_thread(gate, "support@staging")
        regressed_report = capsys.readouterr().out
        same = await asyncio.to_thread(gate, "support:1")
        same_report = capsys.readouterr().out
        export = ["eval", "export", "faq@1", "--url", stack.evaluation_url]
        exported = await asyncio.to_thread(cli, [*export, "-o", str(tmp_path / "faq.jsonl")])

    assert regressed == 1, regressed_report
    assert "REGRESSION  rougeL" in regressed_report
    assert "gate FAILED" in regressed_report
    assert "0/0/5" in regressed_report  # W/T/L: the candidate lost every item
    assert same == 0, same_report
    assert "gate passed" in same_report
    assert exported == 0
    lines = (tmp_path / "faq.jsonl").read_text().splitlines()
    assert [json.loads(line)["item_id"] for line in lines] == list(QUESTIONS)


async def test_bad_requests_are_refused_with_reasons(service_settings: SettingsFactory) -> None:
    async with evaluation_stack(service_settings) as stack:
        bad_file = await stack.evaluation.post(
            "/v1/datasets/faq/versions",
            files={"file": ("items.jsonl", b'{"input": "ok"}\nnot json\n{"reference": "x"}\n')},
        )
        unknown_metric = await stack.evaluation.post(
            "/v1/runs",
            json={
                "dataset": "faq",
                "candidate": {"prompt_name": "support", "model": "echo"},
                "metrics": ["rougeL", "vibes"],
            },
        )
        judge_metric = await stack.evaluation.post(
            "/v1/runs",
            json={
                "dataset": "faq",
                "candidate": {"prompt_name": "support", "model": "echo"},
                "metrics": ["faithfulness"],
            },
        )
        missing = await stack.evaluation.post(
            "/v1/runs", json={"dataset": "nope", "candidate": {"prompt_name": "s", "model": "m"}}
        )
        await stack.upload("faq", ['{"item_id": "a", "input": "hi", "reference": "hello"}'])
        exported = await stack.evaluation.get("/v1/datasets/faq/export")

    assert bad_file.status_code == 422
    problems = bad_file.json()["detail"]["problems"]
    assert [p["line"] for p in problems] == [2, 3]
    assert "not JSON" in problems[0]["problem"]
    assert "needs an input" in problems[1]["problem"]
    assert unknown_metric.status_code == 422
    assert "unknown metric(s) vibes" in unknown_metric.text
    assert judge_metric.status_code == 422
    assert "EVALUATION_JUDGE_MODEL" in judge_metric.text
    assert missing.status_code == 404
    assert exported.status_code == 200
    assert [json.loads(line) for line in exported.text.splitlines()] == [
        {"item_id": "a", "variables": {"question": "hi"}, "reference": "hello"}
    ]


async def test_unknown_prompt_fails_the_run_with_its_reason(
    service_settings: SettingsFactory,
) -> None:
    async with evaluation_stack(service_settings, stubs={"echo": StubBehaviour()}) as stack:
        await stack.upload("faq", ['{"item_id": "a", "input": "hi", "reference": "hello"}'])
        run_id = await start_run(
            stack, {"prompt_name": "missing", "prompt_label": "production", "model": "echo"}, []
        )
        run = await finished_run(stack, run_id)
    assert run["state"] == "failed"
    assert "prompt 'missing' has no label production" in run["error"]


async def test_judge_metrics_score_answers_with_the_judge_model_and_its_registry_rubric(
    service_settings: SettingsFactory,
) -> None:
    verdict = '{"score": 4, "reason": "on topic but incomplete"}'
    judge = StubBehaviour(reply=f"Verdict: {verdict}")
    async with evaluation_stack(
        service_settings,
        stubs={"echo": StubBehaviour(), "judge": judge},
        judge_model="judge",
    ) as stack:
        await stack.create_prompt("support", "{{ question }}", label="production")
        lines = [
            json.dumps({"item_id": item_id, "input": question})
            for item_id, question in list(QUESTIONS.items())[:3]
        ]
        await stack.upload("faq", lines)
        candidate = {"prompt_name": "support", "prompt_label": "production", "model": "echo"}
        run_id = await start_run(stack, candidate, ["answer_relevance", "faithfulness"])
        run = await finished_run(stack, run_id)
        items = (await stack.evaluation.get(f"/v1/runs/{run_id}/items")).json()
        rubric = await stack.prompts.get("/v1/prompts/eval-judge-answer-relevance")

    assert run["state"] == "completed", run
    assert judge.calls == 3  # one verdict per item; faithfulness has no passages to judge
    for item in items:
        assert item["scores"]["answer_relevance"] == pytest.approx(0.75)  # 4 on 1..5
        assert "faithfulness" not in item["scores"]
        assert item["notes"]["faithfulness"] == "no passages were retrieved"
    assert rubric.status_code == 200, rubric.text
    assert rubric.json()["latest_version"] == 1  # items judged at once created it once
