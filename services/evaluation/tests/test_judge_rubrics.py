"""The judge's rubrics: items judged at once, on a registry that lacks the rubric, create it
once and all get a verdict; later items use the rubric they loaded."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx

from llmops_evaluation.candidate import PromptRegistryClient
from llmops_evaluation.judge import LlmJudge


class RegistryAndJudgeModel:
    """An in-memory prompt registry and a judge model that always scores 4; each request
    yields to the event loop first, as a network call would."""

    def __init__(self) -> None:
        self.versions: dict[str, list[object]] = {}
        self.requests: Counter[str] = Counter()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.001)
        path = request.url.path
        self.requests[f"{request.method} {path}"] += 1
        if path == "/v1/chat/completions":
            content = 'Verdict: {"score": 4, "reason": "fine"}'
            return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})
        name = path.split("/")[3]
        if request.method == "POST":
            self.versions.setdefault(name, []).append(json.loads(request.content)["spec"])
            return httpx.Response(201, json={"version": len(self.versions[name])})
        if request.method == "PUT":
            return httpx.Response(200, json={})
        if name not in self.versions:
            return httpx.Response(404, json={"detail": "no such prompt"})
        spec = self.versions[name][-1]
        return httpx.Response(200, json={"name": name, "version": 1, "spec": spec})


async def test_items_judged_at_once_create_a_missing_rubric_once() -> None:
    service = RegistryAndJudgeModel()
    async with httpx.AsyncClient(transport=httpx.MockTransport(service)) as http:
        judge = LlmJudge(
            model="judge",
            inference_url="http://inference",
            http=http,
            prompts=PromptRegistryClient("http://prompts", http),
        )
        verdicts = await asyncio.gather(
            *(judge.answer_relevance(f"question {i}", "an answer") for i in range(6))
        )
        later = await judge.answer_relevance("one more", "an answer")

    assert [v.value for v in [*verdicts, later]] == [0.75] * 7
    assert len(service.versions["eval-judge-answer-relevance"]) == 1
    assert service.requests["POST /v1/prompts/eval-judge-answer-relevance/versions"] == 1
    assert service.requests["PUT /v1/prompts/eval-judge-answer-relevance/labels/production"] == 1
    # one failed lookup, the check inside ensure, the read-back; then the loaded rubric is used
    assert service.requests["GET /v1/prompts/eval-judge-answer-relevance/resolve"] == 3
    assert service.requests["POST /v1/chat/completions"] == 7
