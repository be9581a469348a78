"""Which metrics exist, what each needs, and scoring one answer with the ones asked for.

Lexical and safety metrics are computed in process; `embedding_similarity` with the
embedding model (loaded on first use, batched across concurrent items); the RAG
metrics with the LLM judge. A metric that cannot be computed for an item (no
reference, no passages, a judge failure) gets no value and a note saying why; the
item's other metrics still count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmops.embedding.batching import EncodeBatcher
from llmops.embedding.dense import DenseEncoder
from llmops_evaluation.groundedness import expected_context_recall, groundedness
from llmops_evaluation.judge import JudgeError, LlmJudge
from llmops_evaluation.metrics import (
    EMBEDDING_METRICS,
    LEXICAL_METRICS,
    SAFETY_METRICS,
    MetricSpec,
    UnknownMetricError,
    score_lexical,
    score_safety,
)
from llmops_evaluation.metrics.embedding import cosine_similarities

JUDGE_METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "faithfulness",
            True,
            False,
            "Share of the answer's claims the passages support (LLM judge).",
        ),
        MetricSpec(
            "answer_relevance",
            True,
            False,
            "How directly the answer addresses the question (LLM judge, 1-5 mapped to 0-1).",
        ),
        MetricSpec(
            "context_precision",
            True,
            False,
            "Average precision of the retrieved passages (LLM judge per passage).",
        ),
    )
}
OTHER_METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "groundedness",
            True,
            False,
            "Share of answer sentences whose content words the passages contain (no judge).",
        ),
        MetricSpec(
            "context_recall",
            True,
            True,
            "Share of the expected passages retrieved; "
            "without expected passages, of the reference's sentences the passages "
            "support (LLM judge).",
        ),
    )
}
METRICS: dict[str, MetricSpec] = (
    LEXICAL_METRICS | SAFETY_METRICS | EMBEDDING_METRICS | OTHER_METRICS | JUDGE_METRICS
)
DEFAULT_METRICS = ("exact_match", "token_f1", "bleu", "rougeL", "pii_leak", "toxicity")
REFERENCE_FREE = frozenset(
    {*SAFETY_METRICS, "groundedness", "faithfulness", "answer_relevance", "context_precision"}
)


class MetricUnavailableError(Exception):
    """What a metric needs is not available here (e.g. no embedding model)."""


def check_metrics(names: Sequence[str], *, judge: bool) -> list[str]:
    """The metrics to compute (the defaults when none are named), or a clear refusal."""
    chosen = list(dict.fromkeys(names)) or list(DEFAULT_METRICS)
    unknown = [name for name in chosen if name not in METRICS]
    if unknown:
        msg = f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(sorted(METRICS))}"
        raise UnknownMetricError(msg)
    if not judge and any(name in JUDGE_METRICS for name in chosen):
        needing = [name for name in chosen if name in JUDGE_METRICS]
        msg = f"{', '.join(needing)} need an LLM judge: set EVALUATION_JUDGE_MODEL"
        raise UnknownMetricError(msg)
    return chosen


@dataclass(frozen=True)
class Answer:
    """Everything an answer is scored against."""

    question: str
    answer: str
    reference: str | None = None
    contexts: Sequence[str] = ()
    expected_contexts: Sequence[str] = ()
    input_text: str = ""


@dataclass
class Scores:
    values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


class AnswerScorer:
    """Scores answers; holds the judge and the (lazily loaded) embedding model."""

    def __init__(
        self,
        *,
        judge: LlmJudge | None,
        load_encoder: Callable[[], DenseEncoder] | None,
        batch_size: int = 32,
    ) -> None:
        self.judge = judge
        self._load_encoder = load_encoder
        self._batch_size = batch_size
        self._batcher: EncodeBatcher | None = None
        self._loading = asyncio.Lock()

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()

    async def score(self, metrics: Sequence[str], answer: Answer) -> Scores:
        scores = Scores()
        lexical = [m for m in metrics if m in LEXICAL_METRICS]
        if lexical:
            if answer.reference is None:
                _note_all(scores, lexical, "the item has no reference answer")
            else:
                scores.values |= score_lexical(lexical, answer.answer, answer.reference)
        safety = [m for m in metrics if m in SAFETY_METRICS]
        if safety:
            context = "\n".join([answer.input_text, *answer.contexts])
            scores.values |= score_safety(safety, answer.answer, context)
        for metric in metrics:
            if metric in LEXICAL_METRICS or metric in SAFETY_METRICS:
                continue
            try:
                value, note = await self._score_one(metric, answer)
            except (JudgeError, MetricUnavailableError) as exc:
                scores.notes[metric] = f"{type(exc).__name__}: {exc}"[:500]
                continue
            if value is not None:
                scores.values[metric] = value
            if note:
                scores.notes[metric] = note[:500]
        return scores

    async def _score_one(self, metric: str, answer: Answer) -> tuple[float | None, str]:
        if metric in EMBEDDING_METRICS:
            if answer.reference is None:
                return None, "the item has no reference answer"
            return await self._similarity(answer.answer, answer.reference), ""
        if metric == "groundedness":
            value = groundedness(answer.answer, answer.contexts)
            return value, "" if value is not None else "no passages were retrieved"
        if metric == "context_recall":
            if answer.expected_contexts:
                return expected_context_recall(answer.expected_contexts, answer.contexts), ""
            if answer.reference is None:
                return None, "needs expected contexts or a reference answer"
            return await self._judged(metric, answer)
        return await self._judged(metric, answer)

    async def _judged(self, metric: str, answer: Answer) -> tuple[float | None, str]:
        judge = self.judge
        if judge is None:
            return None, "no LLM judge is configured (EVALUATION_JUDGE_MODEL)"
        if (
            metric in {"faithfulness", "context_precision", "context_recall"}
            and not answer.contexts
        ):
            return None, "no passages were retrieved"
        if metric == "faithfulness":
            verdict = await judge.faithfulness(answer.question, answer.answer, answer.contexts)
        elif metric == "answer_relevance":
            verdict = await judge.answer_relevance(answer.question, answer.answer)
        elif metric == "context_precision":
            verdict = await judge.context_precision(
                answer.question, answer.reference or "", answer.contexts
            )
        else:
            verdict = await judge.context_recall(answer.reference or "", answer.contexts)
        return verdict.value, verdict.reason

    async def _similarity(self, answer: str, reference: str) -> float:
        batcher = await self._encoder()
        vectors = await batcher.encode([answer, reference])
        return cosine_similarities(vectors[:1], vectors[1:])[0]

    async def _encoder(self) -> EncodeBatcher:
        async with self._loading:
            if self._batcher is None:
                if self._load_encoder is None:
                    msg = "no embedding model is configured"
                    raise MetricUnavailableError(msg)
                encoder = await asyncio.to_thread(self._load_encoder)
                self._batcher = EncodeBatcher(encoder, window=self._batch_size)
            return self._batcher


def _note_all(scores: Scores, metrics: Sequence[str], note: str) -> None:
    for metric in metrics:
        scores.notes[metric] = note
