"""Dataset files, groundedness, judge verdicts, online sampling and the CLI's candidates."""

from __future__ import annotations

import argparse

import pytest

from llmops.cli.client import CliError
from llmops.cli.completion_filters import prompt_ref
from llmops.cli.evaluation import _candidate, _dataset_ref
from llmops_evaluation.dataset_items import InvalidDatasetFileError, parse_items
from llmops_evaluation.groundedness import expected_context_recall, groundedness
from llmops_evaluation.judge import JudgeError, average_precision, parse_verdict
from llmops_evaluation.online import sampled


def test_jsonl_and_csv_become_items_and_bad_lines_are_named() -> None:
    jsonl = b'{"input": "where is my order", "reference": "in transit"}\n\n' + (
        b'{"item_id": "chat", "input": [{"role": "user", "content": "hi"}]}\n'
    )
    first, chat = parse_items(jsonl, filename="faq.jsonl")
    assert (first.item_id, first.variables, first.reference) == (
        "item-1",
        {"question": "where is my order"},
        "in transit",
    )
    assert chat.question() == "hi"
    csv = b'item_id,question,reference,contexts,metadata.topic\nq1,hello?,hi,"[""p1""]",greet\n'
    (row,) = parse_items(csv, filename="faq.csv")
    assert (row.variables, row.contexts, row.metadata) == (
        {"question": "hello?"},
        ["p1"],
        {"topic": "greet"},
    )
    with pytest.raises(InvalidDatasetFileError) as refused:
        parse_items(
            b'{"item_id": "a", "input": "x"}\n{"item_id": "a", "input": "y"}\n[1]\n',
            filename="x.jsonl",
        )
    assert [(p.line, p.problem) for p in refused.value.problems] == [
        (2, "item_id 'a' already used on line 1"),
        (3, "expected a JSON object"),
    ]


def test_groundedness_and_expected_context_recall() -> None:
    passages = ["Orders ship from Rotterdam within two working days."]
    assert groundedness("Orders ship from Rotterdam. Delivery by drone on Mars.", passages) == 0.5
    assert groundedness("Anything.", []) is None
    assert expected_context_recall([*passages, "Refunds take a week."], passages) == 0.5


def test_judge_verdicts_are_parsed_or_refused() -> None:
    assert parse_verdict('Sure! ```json\n{"score": 4, "reason": "ok"}\n```') == {
        "score": 4,
        "reason": "ok",
    }
    with pytest.raises(JudgeError, match="did not answer with JSON"):
        parse_verdict("I think it is good")
    assert average_precision([True, False, True]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([False, False]) == 0.0


def test_online_sampling_rate_is_respected_and_stable() -> None:
    ids = [f"chatcmpl-{n}" for n in range(20_000)]
    share = sum(sampled(i, 0.1) for i in ids) / len(ids)
    assert abs(share - 0.1) < 0.01
    assert [sampled(i, 0.1) for i in ids[:100]] == [sampled(i, 0.1) for i in ids[:100]]
    assert not any(sampled(i, 0.0) for i in ids[:1000])
    assert all(sampled(i, 1.0) for i in ids[:1000])


def test_cli_reads_candidates_and_dataset_versions() -> None:
    args = argparse.Namespace(rag_collection=None, top_k=None)
    assert _candidate("support@staging", "m", args)["prompt_label"] == "staging"
    pinned = _candidate("support:3", "m", args)
    assert (pinned["prompt_version"], pinned["prompt_label"]) == (3, None)
    with pytest.raises(CliError, match="pass --model"):
        _candidate("support@staging", None, args)
    with pytest.raises(CliError, match="not a candidate"):
        _candidate("Support!", "m", args)
    assert _dataset_ref("faq@2") == ("faq", 2)
    assert _dataset_ref("faq") == ("faq", None)


def test_cli_reads_prompt_versions_of_selections() -> None:
    assert prompt_ref("support") == ("support", None)
    assert prompt_ref("support@2") == ("support", 2)
    assert prompt_ref("support:v3") == ("support", 3)
    with pytest.raises(CliError, match="not a prompt version"):
        prompt_ref("support@production")
