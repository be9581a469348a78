"""Prompt templates: validation that names every problem, a sandbox SSTI cannot leave, canary."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from llmops.prompting import (
    CompiledPrompt,
    InvalidPromptError,
    PromptSpec,
    RenderError,
    Split,
    SplitArm,
    TemplateMessage,
)
from llmops.prompting.template import MAX_MESSAGE_CHARS, MAX_VARIABLES_BYTES

SCHEMA = {
    "type": "object",
    "properties": {
        "customer": {"type": "string", "minLength": 1},
        "question": {"type": "string"},
        "tier": {"enum": ["free", "pro"]},
    },
    "required": ["customer", "question", "tier"],
}


def _prompt(*contents: str, variables: dict[str, Any] | None = None) -> CompiledPrompt:
    messages = [TemplateMessage(role="user", content=content) for content in contents]
    return CompiledPrompt(PromptSpec(messages=messages, variables=variables or {"type": "object"}))


def test_renders_messages_with_their_roles() -> None:
    spec = PromptSpec(
        messages=[
            TemplateMessage(role="system", content="You help {{ customer }} ({{ tier }})."),
            TemplateMessage(role="user", content="{{ question }}"),
        ],
        variables=SCHEMA,
    )
    rendered = CompiledPrompt(spec).render(
        {"customer": "Acme", "question": "Where is my invoice?", "tier": "pro"}
    )
    assert [(m.role, m.content) for m in rendered] == [
        ("system", "You help Acme (pro)."),
        ("user", "Where is my invoice?"),
    ]


def test_validation_names_every_missing_and_invalid_variable() -> None:
    prompt = _prompt("{{ customer }} {{ question }} {{ tier }}", variables=SCHEMA)

    with pytest.raises(RenderError) as failure:
        prompt.render({"customer": "", "tier": "enterprise"})

    problems = {problem.variable: problem.problem for problem in failure.value.problems}
    assert set(problems) == {"customer", "question", "tier"}
    assert "required" in problems["question"]
    assert "enterprise" in problems["tier"]


def test_an_undeclared_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(RenderError, match=r"'name' is undefined"):
        _prompt("Hello {{ name }}").render({})


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ question['__class__'] }}",
        "{% import 'os' as os %}",
        "{% include '/etc/passwd' %}",
        "{% extends 'base.html' %}",
        "{% from 'x' import y %}",
    ],
)
def test_template_injection_is_refused_when_the_prompt_is_created(template: str) -> None:
    with pytest.raises(InvalidPromptError) as failure:
        _prompt(template)
    assert "messages[0] line 1" in str(failure.value)


@pytest.mark.parametrize(
    "template",
    [
        "{{ question|attr('__class__') }}",
        "{{ (question|attr('upper')).__self__ }}",
        "{% for i in range(10**6) %}{% endfor %}",
    ],
)
def test_the_sandbox_stops_what_the_static_check_cannot_see(template: str) -> None:
    try:
        prompt = _prompt(template)
    except InvalidPromptError:
        return  # refused even earlier: just as safe
    with pytest.raises(RenderError, match=r"refused by the sandbox|range"):
        prompt.render({"question": "q"})


def test_variable_values_are_data_never_templates() -> None:
    rendered = _prompt("Q: {{ question }}").render({"question": "{{ 7 * 7 }} {% raw %}"})
    assert rendered[0].content == "Q: {{ 7 * 7 }} {% raw %}"


def test_size_limits_on_templates_and_variables() -> None:
    with pytest.raises(ValidationError):
        TemplateMessage(role="user", content="x" * (MAX_MESSAGE_CHARS + 1))
    with pytest.raises(RenderError, match="exceed the limit"):
        _prompt("{{ question }}").render({"question": "x" * MAX_VARIABLES_BYTES})


def test_invalid_variables_schema_is_refused() -> None:
    with pytest.raises(InvalidPromptError, match="not valid JSON Schema"):
        _prompt("hi", variables={"type": "no-such-type"})


def test_equal_specs_hash_equal_and_any_change_changes_the_hash() -> None:
    spec = PromptSpec(messages=[TemplateMessage(role="user", content="hi")], model="m")
    same = PromptSpec.model_validate(spec.model_dump())
    changed = PromptSpec(messages=[TemplateMessage(role="user", content="hi")], model="other")
    assert spec.content_hash() == same.content_hash() != changed.content_hash()


def test_canary_split_is_sticky_and_within_three_points_over_10000_users() -> None:
    split = Split(arms=[SplitArm(version=7, weight=90), SplitArm(version=8, weight=10)])
    users = [f"user-{n}" for n in range(10_000)]

    chosen = [split.choose(user, salt="support-answer:production") for user in users]

    canary_share = chosen.count(8) / len(users) * 100
    assert abs(canary_share - 10) <= 3, canary_share
    assert chosen == [split.choose(user, salt="support-answer:production") for user in users]
    assert split.choose(None, salt="x") == 7, "anonymous traffic stays on the stable version"


def test_each_prompt_label_splits_users_independently() -> None:
    split = Split(arms=[SplitArm(version=1, weight=50), SplitArm(version=2, weight=50)])
    users = [uuid.uuid4().hex for _ in range(2_000)]
    first = [split.choose(user, salt="a:production") for user in users]
    second = [split.choose(user, salt="b:production") for user in users]
    agreement = sum(x == y for x, y in zip(first, second, strict=True)) / len(users)
    assert 0.4 < agreement < 0.6, "the same users must not land in every canary together"


def test_split_weights_must_add_up_to_100() -> None:
    with pytest.raises(ValidationError, match="add up to 100"):
        Split(arms=[SplitArm(version=1, weight=90), SplitArm(version=2, weight=20)])
