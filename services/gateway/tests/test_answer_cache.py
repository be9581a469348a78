"""Answer caches: exact keys cover what shapes the answer; semantic hits need the same context."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from llmops.llm.chat import ChatCompletionRequest, ChatMessage, Usage
from llmops_gateway.answer_cache import CachedAnswer, CacheKey, ExactCache, SemanticCache, cache_key

ANSWER = CachedAnswer("Reset it in settings.", "stop", Usage.of(10, 5), "m@host")


def _request(question: str, system: str = "Be brief.", **params: object) -> ChatCompletionRequest:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return ChatCompletionRequest.model_validate({"model": "chat", "messages": messages, **params})


def _key(request: ChatCompletionRequest, tenant: str = "acme") -> CacheKey:
    return cache_key(tenant, request.model, request, request.messages)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_exact_hits_only_the_same_request_in_the_same_tenant() -> None:
    cache = ExactCache(ttl_s=60, max_entries=10)
    request = _request("How do I reset my password?")
    cache.put(_key(request), ANSWER)
    assert cache.get(_key(_request("How do I reset my password?"))) == ANSWER
    assert cache.get(_key(request, tenant="other")) is None
    assert cache.get(_key(_request("How do I reset my password?", temperature=1.0))) is None
    assert cache.get(_key(_request("How do I reset my password?", system="Be long."))) is None


def test_exact_entries_expire_and_the_oldest_go_first() -> None:
    clock = Clock()
    cache = ExactCache(ttl_s=10, max_entries=2, clock=clock)
    keys = [_key(_request(f"question {i}")) for i in range(3)]
    for key in keys:
        cache.put(key, ANSWER)
    assert cache.get(keys[0]) is None
    assert cache.get(keys[2]) == ANSWER
    clock.now = 11
    assert cache.get(keys[2]) is None


def test_semantic_hits_a_close_vector_in_the_same_context_only() -> None:
    clock = Clock()
    cache = SemanticCache(ttl_s=10, threshold=0.9, clock=clock)
    asked = _key(_request("How do I reset my password?"))
    cache.put(asked, np.array([1.0, 0.0, 0.0]), ANSWER)
    paraphrase = _key(_request("How can I reset my password?"))
    hit = cache.get(paraphrase, np.array([0.95, 0.05, 0.0]))
    assert hit is not None
    assert hit[0] == ANSWER
    assert hit[1] > 0.9
    assert cache.get(paraphrase, np.array([0.0, 1.0, 0.0])) is None
    other_context = _key(_request("How can I reset my password?", system="Be long."))
    assert cache.get(other_context, np.array([1.0, 0.0, 0.0])) is None
    clock.now = 11
    assert cache.get(paraphrase, np.array([1.0, 0.0, 0.0])) is None


def test_the_question_is_the_last_user_message() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            "model": "chat",
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "answer"},
                {"role": "user", "content": [{"type": "text", "text": "second"}]},
            ],
        }
    )
    assert cache_key("t", "chat", request, request.messages).question == "second"


def test_messages_are_required_unless_a_prompt_renders_them() -> None:
    with pytest.raises(ValidationError, match="messages must not be empty"):
        ChatCompletionRequest.model_validate({"model": "chat", "messages": []})
    request = ChatCompletionRequest.model_validate(
        {"model": "chat", "prompt": {"name": "support", "label": "production"}}
    )
    assert request.messages == []
    assert request.prompt is not None
    assert ChatMessage(role="user", content=None).text() == ""
