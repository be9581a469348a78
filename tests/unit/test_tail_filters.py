"""`llmops tail` filters and start times, without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmops.cli.client import CliError
from llmops.cli.main import main
from llmops.cli.tail import EventFilter, parse_since, resolve_topic, unknown_field
from llmops.events.catalog import CONTRACTS, Topic

EVENT: dict[str, Any] = {
    "id": "e-1",
    "tenant": "acme",
    "time": "2026-11-23T10:00:00.500000Z",
    "data": {
        "served_model": "gpt-4o",
        "latency_ms": 612.5,
        "stream": True,
        "output": "Your Refund is on its way",
        "error": None,
        "tags": ["vip", "beta"],
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "usage": {"prompt_tokens": 12},
    },
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("tenant=acme", True),
        ("tenant = acme", True),
        ("tenant=globex", False),
        ("tenant!=globex", True),
        ("data.served_model=gpt-4o", True),
        ("data.served_model='gpt-4o'", True),
        ("data.latency_ms>500", True),
        ("data.latency_ms>=612.5", True),
        ("data.latency_ms<500", False),
        ("data.latency_ms=612.5", True),
        ("data.latency_ms>fast", False),
        ("data.usage.prompt_tokens<=12", True),
        ("data.stream=true", True),
        ("data.stream=false", False),
        ("data.error=null", True),
        ("data.error!=null", False),
        ("data.output!=null", True),
        ("data.missing=null", True),
        ("data.missing=x", False),
        ("data.tags=vip", True),
        ("data.tags=gold", False),
        ("data.tags!=gold", True),
        ("data.tags!=vip", False),
        ("data.messages.role=system", True),
        ("data.messages.0.role=system", True),
        ("data.messages.1.role=system", False),
        ("data.messages.5.role=null", True),
        ("data.output~(?i)refund", True),
        ("data.output~^refund", False),
        ("time>2026-11-23T09:59:59Z", True),
        ("time<2026-11-23T10:00", False),
        ("time>=2026-11-23", True),
    ],
)
def test_filter_expressions(expression: str, expected: bool) -> None:
    assert EventFilter.parse(expression).matches(EVENT) is expected


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("tenant", "is not PATH OP VALUE"),
        ("=acme", "is not PATH OP VALUE"),
        ("data..x=1", "empty field name"),
        ("data.output~(", "invalid regular expression"),
    ],
)
def test_bad_filter_expressions_say_what_is_wrong(expression: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        EventFilter.parse(expression)


@pytest.mark.parametrize(
    "path",
    [
        "tenant",
        "data.served_model",
        "data.usage.prompt_tokens",
        "data.prompt.name",
        "data.messages.role",
        "data.messages.0.content",
        "data.tags",
        "kafka.offset",
    ],
)
def test_filter_paths_of_the_schema_are_known(path: str) -> None:
    assert unknown_field(CONTRACTS[Topic.LLM_COMPLETIONS], path.split(".")) is None


@pytest.mark.parametrize(
    "path", ["tenants", "data.servedmodel", "data.usage.tokens", "data.latency_ms.x"]
)
def test_filter_paths_outside_the_schema_are_refused(path: str) -> None:
    problem = unknown_field(CONTRACTS[Topic.LLM_COMPLETIONS], path.split("."))
    assert problem is not None
    assert f"no field {path}" in problem
    assert "served_model" in problem  # the fields that exist are listed


def test_eval_details_are_a_map_of_any_keys() -> None:
    assert unknown_field(CONTRACTS[Topic.EVAL_RESULTS], ["data", "details", "judge"]) is None


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", NOW - timedelta(minutes=10)),
        ("90s", NOW - timedelta(seconds=90)),
        ("1h30m", NOW - timedelta(hours=1, minutes=30)),
        ("2d", NOW - timedelta(days=2)),
        ("1.5h", NOW - timedelta(hours=1.5)),
        ("2026-11-23T10:00:00Z", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ("2026-11-23T10:00:00+02:00", datetime(2026, 11, 23, 8, tzinfo=UTC)),
        ("2026-11-23T10:00", datetime(2026, 11, 23, 10, tzinfo=UTC)),  # no zone: UTC
        ("2026-11-23", datetime(2026, 11, 23, tzinfo=UTC)),
    ],
)
def test_since(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "m10", ""])
def test_since_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since(text, now=NOW)


def test_topics_and_their_dead_letter_topics_resolve() -> None:
    assert resolve_topic("llm.completions") == (CONTRACTS[Topic.LLM_COMPLETIONS], False)
    assert resolve_topic("eval.results.dlq") == (CONTRACTS[Topic.EVAL_RESULTS], True)
    with pytest.raises(CliError, match=r"unknown topic 'llm\.completion'.*prompts\.changed"):
        resolve_topic("llm.completion")


def test_usage_errors_exit_2_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    unreachable = ["--bootstrap", "127.0.0.1:1"]
    assert main(["tail", "llm.completions", "-f", "tenant", *unreachable]) == 2
    assert "is not PATH OP VALUE" in capsys.readouterr().err
    assert main(["tail", "llm.completions", "-f", "data.nope=1", *unreachable]) == 2
    assert "no field data.nope" in capsys.readouterr().err
    assert main(["tail", "llm.completions", "--from-beginning", "--since", "1h"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["tail", "llm.completions", "--max", "0", *unreachable]) == 2
