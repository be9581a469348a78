"""Training data from feedback and reviews, as JSONL lines (rules: `export_rules`).

The exported completions are the tenant's completions with feedback or an approving or
correcting review that the selection admits (time range, prompt, model), oldest first.
Their evidence is read in batches, so an export streams in bounded memory; preference
pairs take a first pass for the best liked answer per prompt (one answer per prompt is
held). Every line is unique: a completion gives at most one line, and a line equal to an
earlier one (same messages and answers) is left out.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, TypeVar

from llmops_feedback.annotation_queue import AnnotationQueue
from llmops_feedback.completion_store import CompletionSelection, CompletionStore
from llmops_feedback.export_rules import (
    Evidence,
    LikedAnswer,
    better,
    liked_answer,
    line_key,
    preference_line,
    preference_pair,
    prompt_key,
    sft_answer,
    sft_line,
)
from llmops_feedback.feedback_store import FeedbackStore

T = TypeVar("T")


class Exporter:
    def __init__(
        self,
        *,
        completions: CompletionStore,
        feedback: FeedbackStore,
        queue: AnnotationQueue,
        batch_size: int = 200,
    ) -> None:
        self._completions = completions
        self._feedback = feedback
        self._queue = queue
        self._batch_size = batch_size

    async def sft(
        self, tenant: str, selection: CompletionSelection, *, include_liked: bool = False
    ) -> AsyncIterator[str]:
        """`{"messages": [...prompt, assistant answer], "metadata": {...}}` lines."""
        seen: set[str] = set()
        async for evidence in self._evidence(tenant, selection):
            answer = sft_answer(evidence, include_liked=include_liked)
            if answer is not None:
                for line in _unique(sft_line(evidence.completion, answer), seen):
                    yield line

    async def preferences(self, tenant: str, selection: CompletionSelection) -> AsyncIterator[str]:
        """`{"prompt": [...], "chosen": ..., "rejected": ..., "metadata": {...}}` lines."""
        best: dict[str, LikedAnswer] = {}
        async for evidence in self._evidence(tenant, selection):
            candidate = liked_answer(evidence)
            if candidate is not None:
                key = prompt_key(evidence.completion.messages)
                best[key] = better(best.get(key), candidate)
        seen: set[str] = set()
        async for evidence in self._evidence(tenant, selection):
            alternative = best.get(prompt_key(evidence.completion.messages))
            pair = preference_pair(evidence, alternative.answer if alternative else None)
            if pair is not None:
                for line in _unique(preference_line(pair), seen):
                    yield line

    async def _evidence(
        self, tenant: str, selection: CompletionSelection
    ) -> AsyncIterator[Evidence]:
        """The exported completions with their feedback and queue entries, oldest first."""
        candidates = await self._feedback.completion_ids(tenant)
        candidates |= await self._queue.reviewed_with_answer(tenant)
        selected: list[tuple[Any, str]] = []
        for batch in _batches(sorted(candidates), self._batch_size):
            selected += await self._completions.times(tenant, batch, selection)
        ordered = [completion_id for _, completion_id in sorted(selected)]
        for batch in _batches(ordered, self._batch_size):
            completions = await self._completions.many(tenant, batch)
            feedback = await self._feedback.of_completions(tenant, batch)
            entries = await self._queue.of_completions(tenant, batch)
            for completion_id in batch:
                completion = completions.get(completion_id)
                if completion is not None:
                    yield Evidence(
                        completion,
                        feedback.get(completion_id, []),
                        entries.get(completion_id),
                    )


def _unique(line: dict[str, Any], seen: set[str]) -> Iterator[str]:
    key = line_key(line)
    if key not in seen:
        seen.add(key)
        yield json.dumps(line, ensure_ascii=False) + "\n"


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
