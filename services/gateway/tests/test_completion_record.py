"""The `llm.completions` event of a call: the tenant's redaction policy decides what text leaves."""

from __future__ import annotations

import pytest

from llmops.events.catalog import CacheResult, CallStatus, RedactionPolicy
from llmops.llm.chat import ChatMessage, Usage
from llmops_gateway.completion_record import CompletionRecord, completion_event


def _record() -> CompletionRecord:
    record = CompletionRecord(
        completion_id="chatcmpl-1",
        request_id="r-1",
        api_key_id="key-1",
        tenant="acme",
        requested_model="chat",
        stream=True,
    )
    record.messages = [ChatMessage(role="user", content="mail me at ana@example.com")]
    record.output = "Sure, ana@example.com noted."
    record.usage = Usage.of(6, 4)
    record.finish_reason = "stop"
    record.first_token()
    return record


@pytest.mark.parametrize(
    ("policy", "message", "output"),
    [
        (RedactionPolicy.NONE, "mail me at ana@example.com", "Sure, ana@example.com noted."),
        (RedactionPolicy.MASKED, "mail me at [EMAIL]", "Sure, [EMAIL] noted."),
        (RedactionPolicy.OMITTED, "", None),
    ],
)
def test_text_leaves_as_the_policy_says(
    policy: RedactionPolicy, message: str, output: str | None
) -> None:
    event = completion_event(_record(), policy)
    assert event.messages[0].content == message
    assert event.output == output
    assert event.redaction is policy


def test_a_failed_call_is_an_error_with_its_code_and_no_cost() -> None:
    record = _record()
    record.fail("upstream_timeout", "stub timed out")
    event = completion_event(record, RedactionPolicy.MASKED)
    assert event.status is CallStatus.ERROR
    assert event.error is not None
    assert event.error.code == "upstream_timeout"
    assert event.cost_usd == 0
    assert event.cache is CacheResult.NONE
    assert event.usage.total_tokens == 10
    assert event.time_to_first_token_ms is not None
    assert event.latency_ms >= event.time_to_first_token_ms
