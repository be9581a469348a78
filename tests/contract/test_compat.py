"""Schema evolution: the real schemas evolve by the rules, and the checker enforces them."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import fastavro
import fastavro.validation
import pytest

from llmops.contracts.check import baseline_problems, load_schemas_at
from llmops.contracts.compat import (
    backward_problems,
    evolution_problems,
    fastavro_problems,
    upcaster_problems,
)
from llmops.contracts.loading import SchemaSet, load_schemas
from llmops.contracts.samples import example_payload, minimal_datum
from llmops.events.catalog import CONTRACTS, Topic
from llmops.events.upcasters import UPCASTERS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((Path(__file__).parent / "fixtures" / "compat").glob("*.json"))


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return load_schemas(ROOT / "schemas")


def _record(fields: list[dict[str, Any]], name: str = "Sample") -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "namespace": "llmops.events",
        "doc": "Test record.",
        "subject_fields": ["id"],
        "fields": [{"name": "id", "type": "string", "doc": "Id."}, *fields],
    }


def _field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "doc": f"{name}.", **extra}


# --- the real schemas ------------------------------------------------------------------


def test_real_schemas_are_backward_compatible_or_upcast(schemas: SchemaSet) -> None:
    """Each kept vN reads vN-1 data, or a registered upcaster turns vN-1 data into vN data."""
    pairs = 0
    for topic, versions in schemas.topics.items():
        for version in sorted(versions)[1:]:
            pairs += 1
            reader, writer = versions[version], versions[version - 1]
            upcast = UPCASTERS.get((topic, version - 1))
            if upcast is None:
                assert backward_problems(reader, writer) == [], f"{topic} v{version}"
                assert fastavro_problems(reader, writer) == [], f"{topic} v{version}"
                continue
            parsed = fastavro.parse_schema(copy.deepcopy(reader))
            for sample in (example_payload(writer), minimal_datum(writer)):
                upcast_sample = upcast(copy.deepcopy(sample))
                assert fastavro.validation.validate(upcast_sample, parsed, raise_errors=True)
                if version == schemas.latest_version(topic):
                    CONTRACTS[Topic(topic)].payload.model_validate(upcast_sample)
    assert evolution_problems(schemas, UPCASTERS) == []
    assert pairs == sum(len(v) - 1 for v in schemas.topics.values())


def test_every_upcaster_belongs_to_a_kept_version_step(schemas: SchemaSet) -> None:
    for topic, version in UPCASTERS:
        assert topic in schemas.topics, f"upcaster for unknown topic {topic}"
        assert {version, version + 1} <= set(schemas.topics[topic]), (topic, version)


# --- the checker, on fixtures ------------------------------------------------------------


def _load_fixture(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_checker_on_fixture(path: Path) -> None:
    case = _load_fixture(path)
    reader, writer = case["reader"], case["writer"]
    fastavro.parse_schema(copy.deepcopy(reader))
    fastavro.parse_schema(copy.deepcopy(writer))
    problems = backward_problems(reader, writer)
    if case["compatible"]:
        assert problems == [], case["description"]
        assert fastavro_problems(reader, writer) == [], "fastavro disagrees: " + path.stem
    else:
        assert any(case["problem"] in p for p in problems), (case["problem"], problems)
        if case["fastavro_detects"]:
            assert fastavro_problems(reader, writer), "fastavro reads what the rules reject"


def test_fixtures_cover_the_required_cases() -> None:
    names = {p.stem for p in FIXTURES}
    required = {
        "new_field_without_default",
        "type_change_string_to_int",
        "int_to_long",
        "enum_symbol_removed_without_default",
        "union_narrowing",
        "nested_record_field_change",
        "new_optional_field_with_default",
        "removed_field",
    }
    assert required <= names


def test_problems_name_every_offending_path() -> None:
    writer = _record([_field("a", "string"), _field("b", "int")])
    reader = _record([_field("a", "int"), _field("b", "string"), _field("c", "long")])
    problems = backward_problems(reader, writer)
    assert len(problems) == 3
    assert [p.split(":")[0] for p in problems] == ["`a`", "`b`", "`c`"]


def test_named_type_references_are_resolved() -> None:
    """A type referenced by name after its inline definition is checked like the definition."""
    usage: dict[str, Any] = {
        "type": "record",
        "name": "Usage",
        "doc": "Usage.",
        "fields": [_field("tokens", "int")],
    }
    changed = copy.deepcopy(usage)
    changed["fields"][0]["type"] = "string"
    writer = _record([_field("first", usage), _field("second", "Usage")])
    reader = _record([_field("first", changed), _field("second", "llmops.events.Usage")])
    problems = backward_problems(reader, writer)
    assert any(p.startswith("`second.tokens`: type changed from int to string") for p in problems)


# --- upcasters and history ---------------------------------------------------------------


def _two_versions(v2_field: dict[str, Any]) -> SchemaSet:
    v1 = _record([_field("count", "string")])
    v2 = _record([v2_field])
    return SchemaSet(envelope={}, topics={"test.topic": {1: v1, 2: v2}})


def test_incompatible_version_needs_an_upcaster() -> None:
    schemas = _two_versions(_field("count", "int"))
    problems = evolution_problems(schemas, {})
    assert problems
    assert "test.topic v2 cannot read v1: `count`: type changed from string to int" in problems[0]
    assert "register an upcaster for ('test.topic', 1)" in problems[0]


def test_registered_upcaster_is_applied_and_its_output_validated() -> None:
    schemas = _two_versions(_field("count", "int"))

    def good(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "count": len(data["count"])}

    def bad(data: dict[str, Any]) -> dict[str, Any]:
        return data  # leaves `count` a string: not valid v2

    assert evolution_problems(schemas, {("test.topic", 1): good}) == []
    problems = evolution_problems(schemas, {("test.topic", 1): bad})
    assert problems
    assert all("not valid for the new version" in p for p in problems)
    v1, v2 = schemas.topics["test.topic"][1], schemas.topics["test.topic"][2]
    assert upcaster_problems(v2, v1, good) == []


def test_compatible_new_version_needs_no_upcaster() -> None:
    schemas = _two_versions(_field("extra", ["null", "long"], default=None))
    assert evolution_problems(schemas, {}) == []


def test_kept_versions_may_only_gain_fields_with_defaults() -> None:
    old = SchemaSet(envelope={}, topics={"t.a": {1: _record([_field("a", "string")])}})

    def new(fields: list[dict[str, Any]]) -> SchemaSet:
        return SchemaSet(envelope={}, topics={"t.a": {1: _record(fields)}})

    added = new([_field("a", "string"), _field("b", ["null", "string"], default=None)])
    assert baseline_problems(old, added) == []
    required = new([_field("a", "string"), _field("b", "string")])
    assert any("`b`: field added without a default" in p for p in baseline_problems(old, required))
    removed = new([])
    assert any("field `a` was removed" in p for p in baseline_problems(old, removed))
    gone = SchemaSet(envelope={}, topics={})
    assert baseline_problems(old, gone) == ["t.a v1 was removed; every published version is kept"]


def test_schemas_are_read_from_a_git_revision(tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")

    def run(*args: str) -> None:
        subprocess.run([git, "-C", str(tmp_path), *args], check=True, capture_output=True)

    run("init", "-q")
    run("add", "schemas")
    run("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "schemas")
    at_head = load_schemas_at(tmp_path, "HEAD")
    current = load_schemas(tmp_path / "schemas")
    assert at_head == current
    assert baseline_problems(at_head, current) == []
