"""Caches of finished answers: exact (identical request) and semantic (similar question).

Both are scoped by tenant and model alias, expire after a TTL and are bounded in size
(least recently used out first). The exact key is a hash of everything that shapes the
answer: the messages after prompt rendering and context injection, and the sampling
parameters. The semantic cache compares the embedding of the last user message with
earlier ones asked in the *same* context (the other messages and parameters hashed), so
a paraphrase hits but the same question under a different system prompt never does.
Each replica keeps its own caches (ADR 0010).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmops.llm.chat import ChatCompletionRequest, ChatMessage, FinishReason, Usage


@dataclass(frozen=True)
class CachedAnswer:
    content: str
    finish_reason: FinishReason
    usage: Usage
    served_model: str


@dataclass(frozen=True)
class CacheKey:
    """Identity of a request for the caches; `question` is what the semantic cache embeds."""

    scope: tuple[str, str]  # tenant, alias
    exact: str
    context: str
    question: str | None


def cache_key(
    tenant: str, alias: str, request: ChatCompletionRequest, messages: list[ChatMessage]
) -> CacheKey:
    """Hashes of the final messages and the parameters that change the answer."""
    parameters = {
        "max_tokens": request.token_limit(),
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop_sequences(),
        "seed": request.seed,
    }
    turns = [(message.role, message.text()) for message in messages]
    last_user = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=None)
    question = turns[last_user][1] if last_user is not None else None
    context = [turn for i, turn in enumerate(turns) if i != last_user]
    return CacheKey(
        scope=(tenant, alias),
        exact=_digest(turns, parameters),
        context=_digest(context, parameters),
        question=question,
    )


def _digest(turns: Sequence[tuple[str, str]], parameters: dict[str, Any]) -> str:
    # repr of strings, numbers and None is exact and stable, and the parameters are always
    # built in the same order; the keys live only in this process's memory.
    return hashlib.sha256(repr((turns, parameters)).encode()).hexdigest()


@dataclass
class _Entry:
    answer: CachedAnswer
    expires: float


@dataclass
class ExactCache:
    ttl_s: float
    max_entries: int
    clock: Callable[[], float] = time.monotonic
    _entries: OrderedDict[tuple[tuple[str, str], str], _Entry] = field(default_factory=OrderedDict)

    def get(self, key: CacheKey) -> CachedAnswer | None:
        slot = (key.scope, key.exact)
        entry = self._entries.get(slot)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            del self._entries[slot]
            return None
        self._entries.move_to_end(slot)
        return entry.answer

    def put(self, key: CacheKey, answer: CachedAnswer) -> None:
        slot = (key.scope, key.exact)
        self._entries[slot] = _Entry(answer, self.clock() + self.ttl_s)
        self._entries.move_to_end(slot)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


@dataclass
class _Bucket:
    """The questions asked in one context: unit vectors as rows, answers alongside."""

    vectors: np.ndarray
    answers: list[_Entry]


@dataclass
class SemanticCache:
    ttl_s: float
    threshold: float
    max_per_context: int = 256
    max_contexts: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[tuple[tuple[str, str], str], _Bucket] = field(default_factory=OrderedDict)

    def get(self, key: CacheKey, vector: np.ndarray) -> tuple[CachedAnswer, float] | None:
        """The answer to the most similar earlier question, if similar enough, and its score."""
        bucket = self._buckets.get((key.scope, key.context))
        if bucket is None:
            return None
        self._expire(bucket)
        if not bucket.answers:
            return None
        scores = bucket.vectors @ _unit(vector)
        best = int(np.argmax(scores))
        if float(scores[best]) < self.threshold:
            return None
        return bucket.answers[best].answer, float(scores[best])

    def put(self, key: CacheKey, vector: np.ndarray, answer: CachedAnswer) -> None:
        slot = (key.scope, key.context)
        bucket = self._buckets.get(slot)
        row = _unit(vector)[np.newaxis, :]
        entry = _Entry(answer, self.clock() + self.ttl_s)
        if bucket is None:
            self._buckets[slot] = _Bucket(row, [entry])
        else:
            self._expire(bucket)
            bucket.vectors = np.vstack([bucket.vectors, row])[-self.max_per_context :]
            bucket.answers = [*bucket.answers, entry][-self.max_per_context :]
        self._buckets.move_to_end(slot)
        while len(self._buckets) > self.max_contexts:
            self._buckets.popitem(last=False)

    def _expire(self, bucket: _Bucket) -> None:
        now = self.clock()
        alive = [i for i, entry in enumerate(bucket.answers) if entry.expires > now]
        if len(alive) != len(bucket.answers):
            bucket.vectors = bucket.vectors[alive]
            bucket.answers = [bucket.answers[i] for i in alive]


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector
