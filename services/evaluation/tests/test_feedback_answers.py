"""Lines of the feedback service's SFT export read as dataset items: the conversation before
the answer is the input, the answer the reference; lines that do not fit are refused."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from llmops.tenancy import TENANT_HEADER
from llmops_evaluation.feedback_answers import FeedbackAnswers, FeedbackExportError, FeedbackFilter


def _line(completion_id: str, *messages: tuple[str, str]) -> str:
    return json.dumps(
        {
            "messages": [{"role": role, "content": content} for role, content in messages],
            "metadata": {
                "completion_id": completion_id,
                "time": "2025-01-01T12:00:00+00:00",
                "served_model": "m1",
                "prompt": None,
                "trace_id": None,
                "source": "user_correction",
            },
        }
    )


async def _read(lines: list[str], **selection: Any) -> tuple[list[Any], httpx.Request]:
    seen: list[httpx.Request] = []

    def export(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="\n".join(lines) + "\n")

    async with httpx.AsyncClient(transport=httpx.MockTransport(export)) as http:
        items = await FeedbackAnswers("http://feedback/", http).items(
            "acme", FeedbackFilter(**selection)
        )
    return items, seen[0]


async def test_export_lines_become_items_up_to_the_limit() -> None:
    lines = [
        _line("c1", ("system", "Be brief."), ("user", "Where?"), ("assistant", "Here.")),
        _line("c2", ("system", "Nothing to ask."), ("assistant", "Hello.")),  # no input: left out
        _line("c1", ("user", "Where?"), ("assistant", "Here.")),  # a repeat: left out
        "",
        _line("c3", ("user", "When?"), ("assistant", "Now.")),
        _line("c4", ("user", "Who?"), ("assistant", "Me.")),
    ]
    items, request = await _read(lines, model="m1", prompt_version=2, limit=2)

    assert [(i.item_id, i.question(), i.reference) for i in items] == [
        ("c1", "Where?", "Here."),
        ("c3", "When?", "Now."),
    ]
    assert items[0].metadata == {
        "completion_id": "c1",
        "source": "feedback",
        "reference_source": "user_correction",
        "served_model": "m1",
        "prompt": "-",
        "trace_id": "",
    }
    assert str(request.url.path) == "/v1/exports/sft"
    assert dict(request.url.params) == {
        "include_liked": "false",
        "model": "m1",
        "prompt_version": "2",
    }
    assert request.headers[TENANT_HEADER] == "acme"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (_line("c1", ("assistant", "Hi."), ("user", "Where?")), "line 1 of the SFT export ends"),
        ('{"messages": []}', "line 1 of the feedback service's SFT export is not usable: "),
        (_line("bad id!", ("user", "x"), ("assistant", "y")), "is not usable: item_id"),
    ],
)
async def test_lines_that_are_no_item_refuse_the_export(line: str, problem: str) -> None:
    with pytest.raises(FeedbackExportError, match=problem):
        await _read([line])
