"""LLM-as-judge: RAG metrics scored by a model following rubrics from the prompt registry.

The judge is any model the inference service serves (its OpenAI-compatible API). A
verdict that cannot be parsed is a `JudgeError`: the item gets no value for that metric
and the reason is kept, rather than a guessed score.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from llmops.keyed_locks import KeyedLocks
from llmops.prompting import CompiledPrompt
from llmops_evaluation.candidate import CandidateError, PromptRegistryClient
from llmops_evaluation.rubrics import RUBRICS, rubric_prompt_name

_RUBRIC_TTL_S = 60.0
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)

Preference = Literal["A", "B", "tie"]


class JudgeError(Exception):
    """The judge could not give a verdict (unreachable, or an answer that is not one)."""


@dataclass(frozen=True)
class Verdict:
    value: float
    reason: str


class LlmJudge:
    def __init__(
        self,
        *,
        model: str,
        inference_url: str,
        http: httpx.AsyncClient,
        prompts: PromptRegistryClient,
    ) -> None:
        self.model = model
        self._url = inference_url.rstrip("/")
        self._http = http
        self._prompts = prompts
        self._rubrics: dict[str, tuple[float, CompiledPrompt, dict[str, Any]]] = {}
        self._loading = KeyedLocks()  # items judged at once load (or create) a rubric once

    async def faithfulness(self, question: str, answer: str, contexts: Sequence[str]) -> Verdict:
        """Share of the answer's claims the retrieved passages support."""
        verdict = await self._ask(
            "faithfulness", question=question, answer=answer, context=_numbered(contexts)
        )
        return _share(verdict, "claims", "supported")

    async def answer_relevance(self, question: str, answer: str) -> Verdict:
        """How directly the answer addresses the question, 1-5 mapped onto [0, 1]."""
        verdict = await self._ask("answer_relevance", question=question, answer=answer)
        score = verdict.get("score")
        if not isinstance(score, int | float) or not 1 <= score <= 5:
            raise JudgeError(f"expected a score from 1 to 5, got {score!r}")
        return Verdict((float(score) - 1) / 4, str(verdict.get("reason", "")))

    async def context_precision(
        self, question: str, reference: str, contexts: Sequence[str]
    ) -> Verdict:
        """Average precision of the retrieved passages, relevance judged per passage."""
        verdict = await self._ask(
            "context_precision", question=question, reference=reference, context=_numbered(contexts)
        )
        relevant = verdict.get("relevant")
        if not isinstance(relevant, list) or len(relevant) != len(contexts):
            raise JudgeError(f"expected {len(contexts)} relevance flags, got {relevant!r}")
        flags = [bool(flag) for flag in relevant]
        return Verdict(average_precision(flags), f"{sum(flags)} of {len(flags)} relevant")

    async def context_recall(self, reference: str, contexts: Sequence[str]) -> Verdict:
        """Share of the reference answer's sentences the retrieved passages support."""
        verdict = await self._ask(
            "context_recall", reference=reference, context=_numbered(contexts)
        )
        return _share(verdict, "sentences", "supported")

    async def pairwise(
        self, question: str, reference: str, answer_a: str, answer_b: str
    ) -> tuple[Preference, str]:
        verdict = await self._ask(
            "pairwise", question=question, reference=reference, answer_a=answer_a, answer_b=answer_b
        )
        preferred = str(verdict.get("preferred", "")).strip()
        if preferred not in {"A", "B", "tie"}:
            raise JudgeError(f"expected preferred A, B or tie, got {preferred!r}")
        choice: Preference = "A" if preferred == "A" else "B" if preferred == "B" else "tie"
        return choice, str(verdict.get("reason", ""))

    async def _ask(self, metric: str, **variables: str) -> dict[str, Any]:
        prompt, parameters = await self._rubric(metric)
        defaults = {"question": "", "answer": "", "reference": "", "context": ""}
        messages = [
            {"role": m.role, "content": m.content} for m in prompt.render(defaults | variables)
        ]
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": parameters.get("temperature", 0),
            "max_tokens": parameters.get("max_tokens", 300),
        }
        try:
            response = await self._http.post(f"{self._url}/v1/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise JudgeError(f"the judge model is unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise JudgeError(
                f"the judge call failed ({response.status_code}): {response.text[:200]}"
            )
        content = response.json()["choices"][0]["message"].get("content") or ""
        return parse_verdict(content)

    async def _rubric(self, metric: str) -> tuple[CompiledPrompt, dict[str, Any]]:
        async with self._loading.hold(metric):
            cached = self._rubrics.get(metric)
            if cached is not None and time.monotonic() - cached[0] < _RUBRIC_TTL_S:
                return cached[1], cached[2]
            return await self._load_rubric(metric)

    async def _load_rubric(self, metric: str) -> tuple[CompiledPrompt, dict[str, Any]]:
        name = rubric_prompt_name(metric)
        try:
            resolved = await self._prompts.resolve(name, label="production", version=None)
        except CandidateError:  # first use: create the default rubric, then read it back
            try:
                await self._prompts.ensure(name, RUBRICS[metric], author="evaluation")
                resolved = await self._prompts.resolve(name, label="production", version=None)
            except (CandidateError, httpx.HTTPError) as exc:
                raise JudgeError(f"the rubric {name!r} is not available: {exc}") from exc
        compiled = CompiledPrompt(resolved.spec)
        self._rubrics[metric] = (time.monotonic(), compiled, resolved.spec.parameters)
        return compiled, resolved.spec.parameters


def parse_verdict(content: str) -> dict[str, Any]:
    """The JSON object in a judge's reply (models like to wrap it in prose or fences)."""
    match = _JSON_OBJECT.search(content)
    if match is None:
        raise JudgeError(f"the judge did not answer with JSON: {content[:200]!r}")
    try:
        verdict = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise JudgeError(f"the judge's JSON does not parse: {exc.msg}") from exc
    if not isinstance(verdict, dict):
        raise JudgeError("the judge's JSON is not an object")
    return verdict


def average_precision(relevant: Sequence[bool]) -> float:
    """Mean of precision@k over the ranks k that hold a relevant passage (0 when none do)."""
    hits = 0
    total = 0.0
    for rank, flag in enumerate(relevant, start=1):
        if flag:
            hits += 1
            total += hits / rank
    return total / hits if hits else 0.0


def _share(verdict: dict[str, Any], field: str, flag: str) -> Verdict:
    entries = verdict.get(field)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise JudgeError(f"expected a list of {field}, got {entries!r}"[:300])
    if not entries:
        return Verdict(1.0, f"no {field} to check")
    supported = sum(1 for entry in entries if entry.get(flag) is True)
    reason = str(verdict.get("reason") or f"{supported} of {len(entries)} {field} {flag}")
    return Verdict(supported / len(entries), reason)


def _numbered(contexts: Sequence[str]) -> str:
    return "\n\n".join(f"[{n}] {text}" for n, text in enumerate(contexts, start=1))
