"""The schemas and their Python binding: valid, in agreement, round-tripping, current."""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
import sys
import types
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import fastavro
import pytest
from pydantic import BaseModel, Field, create_model

from llmops.contracts.avro import SchemaError, expand, kind, logical_type, short_name
from llmops.contracts.check import generated_files
from llmops.contracts.cli import main
from llmops.contracts.codegen import CATALOG_PATH, render_catalog
from llmops.contracts.lint import schema_problems
from llmops.contracts.loading import SchemaSet, load_schemas
from llmops.contracts.samples import example_payload, minimal_datum
from llmops.events.base import Payload
from llmops.events.catalog import CONTRACTS, ENVELOPE_SCHEMA, SUBJECT_FIELDS, Topic

ROOT = Path(__file__).resolve().parents[2]
TOPICS = sorted(p.name for p in (ROOT / "schemas").iterdir() if p.is_dir())
RUFF = Path(sys.executable).parent / "ruff"


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return load_schemas(ROOT / "schemas")


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


# --- the Avro shape of a pydantic model, derived by reflection ------------------------------


def model_shape(model: type[BaseModel]) -> dict[str, Any]:
    """Name, doc and fields (name, type, default, doc) of a model, in Avro terms."""
    fields = []
    for name, info in model.model_fields.items():
        if info.is_required():
            default: Any = "<required>"
        elif info.default_factory is not None:
            default = info.get_default(call_default_factory=True)
        else:
            default = info.default
        assert info.annotation is not None
        fields.append((name, _annotation_shape(info.annotation), default, _norm(info.description)))
    return {"name": model.__name__, "doc": _norm(model.__doc__), "fields": fields}


def _annotation_shape(annotation: Any) -> Any:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        branches = [a for a in args if a is not type(None)]
        return ("union", type(None) in args, tuple(_annotation_shape(a) for a in branches))
    if origin is list:
        return ("array", _annotation_shape(args[0]))
    if origin is dict:
        assert args[0] is str, "Avro map keys are strings"
        return ("map", _annotation_shape(args[1]))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        symbols = tuple(member.value for member in annotation)
        return ("enum", annotation.__name__, symbols, _norm(annotation.__doc__))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        assert issubclass(annotation, Payload), f"{annotation} must derive from Payload"
        return ("record", model_shape(annotation))
    primitives = {str: "string", int: "int", float: "double", bool: "boolean", bytes: "bytes"}
    if annotation is datetime:
        return "timestamp"
    return primitives[annotation]


def schema_shape(record: dict[str, Any]) -> dict[str, Any]:
    """The same shape, read from an expanded Avro record schema."""
    fields = [
        (
            field["name"],
            _type_shape(field["type"]),
            field.get("default", "<required>"),
            _norm(field.get("doc")),
        )
        for field in record["fields"]
    ]
    return {"name": short_name(record["name"]), "doc": _norm(record.get("doc")), "fields": fields}


def _type_shape(schema: Any) -> Any:
    k = kind(schema)
    if k == "union":
        branches = [b for b in schema if kind(b) != "null"]
        return ("union", len(branches) < len(schema), tuple(_type_shape(b) for b in branches))
    if k == "array":
        return ("array", _type_shape(schema["items"]))
    if k == "map":
        return ("map", _type_shape(schema["values"]))
    if k == "enum":
        return ("enum", short_name(schema["name"]), tuple(schema["symbols"]), _norm(schema["doc"]))
    if k == "record":
        return ("record", schema_shape(schema))
    if logical_type(schema) == "timestamp-millis":
        return "timestamp"
    return {"long": "int", "float": "double"}.get(k, k)


# --- schemas ---------------------------------------------------------------------------


def test_every_schema_parses_and_follows_the_house_rules(schemas: SchemaSet) -> None:
    fastavro.parse_schema(copy.deepcopy(schemas.envelope))
    for versions in schemas.topics.values():
        for schema in versions.values():
            fastavro.parse_schema(copy.deepcopy(schema))
    assert schema_problems(schemas) == []


def test_catalog_names_every_topic_with_its_schemas(schemas: SchemaSet) -> None:
    assert sorted(Topic) == TOPICS
    assert set(CONTRACTS) == set(Topic) == set(SUBJECT_FIELDS)
    assert schemas.envelope == ENVELOPE_SCHEMA
    for topic, contract in CONTRACTS.items():
        latest = schemas.latest(topic)
        assert contract.topic == topic
        assert contract.version == schemas.latest_version(topic)
        assert dict(contract.schemas) == schemas.topics[topic]
        assert contract.event_type == contract.payload.__name__ == latest["name"]
        assert contract.description == _norm(latest["doc"])
        assert contract.dlq == f"{topic}.dlq"
        assert SUBJECT_FIELDS[topic] == tuple(latest["subject_fields"])


@pytest.mark.parametrize("topic", TOPICS)
def test_model_agrees_with_schema(topic: str, schemas: SchemaSet) -> None:
    payload = CONTRACTS[Topic(topic)].payload
    assert model_shape(payload) == schema_shape(expand(schemas.latest(topic)))


def test_reflection_catches_a_hand_edited_model(schemas: SchemaSet) -> None:
    """The agreement check is not vacuous: one changed field type is a mismatch."""
    contract = CONTRACTS[Topic.PROMPTS_CHANGED]
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in contract.payload.model_fields.items()
    }
    fields["version"] = (str | None, Field(default=None, description="hand edited"))
    edited = create_model(
        "PromptChanged", __base__=Payload, __doc__=contract.payload.__doc__, **fields
    )
    assert model_shape(edited) != schema_shape(expand(schemas.latest(Topic.PROMPTS_CHANGED)))


def test_reflection_catches_an_edited_schema(schemas: SchemaSet) -> None:
    """...and so does a schema edited without regenerating (here: a new optional field)."""
    schema = copy.deepcopy(schemas.latest(Topic.FEEDBACK_EVENTS))
    schema["fields"].append({"name": "x", "type": ["null", "string"], "default": None, "doc": "x"})
    payload = CONTRACTS[Topic.FEEDBACK_EVENTS].payload
    assert model_shape(payload) != schema_shape(expand(schema))


# --- data ------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", TOPICS)
def test_examples_validate_and_round_trip(topic: str) -> None:
    contract = CONTRACTS[Topic(topic)]
    parsed = fastavro.parse_schema(copy.deepcopy(contract.schema))
    for datum in (example_payload(contract.schema), minimal_datum(contract.schema)):
        model = contract.payload.model_validate(datum)
        assert model.model_dump() == datum
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, model.model_dump())
        buffer.seek(0)
        decoded = fastavro.schemaless_reader(buffer, parsed, parsed)
        assert contract.payload.model_validate(decoded) == model
        assert contract.payload.model_validate_json(model.model_dump_json()) == model


def test_examples_fill_every_field() -> None:
    datum = example_payload(CONTRACTS[Topic.LLM_COMPLETIONS].schema)
    assert all(value not in (None, [], {}) for value in datum.values())
    assert datum["messages"][0]["role"] == "system"
    assert example_payload(CONTRACTS[Topic.LLM_COMPLETIONS].schema) == datum


def test_subject_fields_are_set_in_examples() -> None:
    for topic, fields in SUBJECT_FIELDS.items():
        datum = example_payload(CONTRACTS[topic].schema)
        assert any(isinstance(datum.get(f), str) for f in fields), topic


# --- generated files -------------------------------------------------------------------


def test_generated_files_are_current(schemas: SchemaSet) -> None:
    for path, content in generated_files(schemas).items():
        assert (ROOT / path).read_text(encoding="utf-8") == content, (
            f"{path} is stale: run `make schemas` (python -m llmops.contracts generate)"
        )


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    if not RUFF.exists():
        pytest.skip("ruff is not installed next to the interpreter")
    command = [str(RUFF), *args, "--config", str(ROOT / "pyproject.toml")]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_generated_catalog_is_ruff_clean_and_format_stable() -> None:
    catalog = str(ROOT / CATALOG_PATH)
    assert _ruff("format", "--check", "--diff", catalog).returncode == 0
    result = _ruff("check", catalog)
    assert result.returncode == 0, result.stdout


def test_generator_output_is_stable_for_awkward_docs(tmp_path: Path, schemas: SchemaSet) -> None:
    """Long words, quotes, backslashes and non-ASCII docs still give ruff-clean code."""
    schema = copy.deepcopy(schemas.latest(Topic.PROMPTS_CHANGED))
    schema["doc"] = 'A "quoted" doc with a back\\slash, ' + "x" * 120 + " and caf\u00e9 \u2014 " * 9
    schema["fields"][0]["doc"] = "it's " + "word " * 40 + '"end"'
    schema["fields"].append(
        {"name": "ratio", "type": "double", "default": 1, "doc": "\u2192 " + "y" * 150}
    )
    awkward = SchemaSet(envelope=schemas.envelope, topics={"prompts.changed": {1: schema}})
    package = tmp_path / "events"
    package.mkdir()
    target = package / "catalog.py"
    target.write_text(render_catalog(awkward), encoding="utf-8")
    shutil.copy(ROOT / "libs/llmops/src/llmops/events/base.py", package / "base.py")
    assert _ruff("format", "--check", "--diff", str(target)).returncode == 0
    result = _ruff("check", str(target))
    assert result.returncode == 0, result.stdout


def test_generator_refuses_names_that_clash_with_pydantic(schemas: SchemaSet) -> None:
    for name in ("model_name", "schema", "json", "class"):
        schema = copy.deepcopy(schemas.latest(Topic.DOCS_INDEXED))
        schema["fields"].append({"name": name, "type": "string", "default": "", "doc": "x"})
        clashing = SchemaSet(envelope=schemas.envelope, topics={"docs.indexed": {1: schema}})
        with pytest.raises(SchemaError, match=f"DocumentIndexed.{name}: field name"):
            render_catalog(clashing)


def test_generator_refuses_conflicting_shared_types(schemas: SchemaSet) -> None:
    """`TokenUsage` must be defined identically wherever it is used."""
    changed = copy.deepcopy(schemas.latest(Topic.INFERENCE_RESULTS))
    usage = next(f for f in changed["fields"] if f["name"] == "usage")
    usage["type"]["doc"] = "A different definition."
    topics = {
        "inference.results": {1: changed},
        "llm.completions": {1: schemas.latest(Topic.LLM_COMPLETIONS)},
    }
    with pytest.raises(SchemaError, match="TokenUsage is defined differently"):
        render_catalog(SchemaSet(envelope=schemas.envelope, topics=topics))


# --- the command line ------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the schemas and generated files, for commands that modify them."""
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    for path in generated_files(load_schemas(ROOT / "schemas")):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    return tmp_path


def test_check_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(ROOT), "check"]) == 0
    assert capsys.readouterr().out.startswith("contracts ok: ")


def test_check_fails_on_missing_doc_and_stale_files(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = checkout / "schemas" / "prompts.changed" / "v1.avsc"
    schema = json.loads(path.read_text())
    del schema["fields"][0]["doc"]
    path.write_text(json.dumps(schema))
    assert main(["--root", str(checkout), "check"]) == 1
    err = capsys.readouterr().err
    assert "field llmops.events.PromptChanged.name has no doc" in err
    assert f"{CATALOG_PATH} is out of date" in err


def test_check_fails_on_incompatible_version(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = json.loads((checkout / "schemas" / "prompts.changed" / "v1.avsc").read_text())
    v2 = copy.deepcopy(v1)
    v2["fields"].append({"name": "approved_by", "type": "string", "doc": "Approver."})
    (checkout / "schemas" / "prompts.changed" / "v2.avsc").write_text(json.dumps(v2))
    assert main(["--root", str(checkout), "generate"]) == 0
    assert main(["--root", str(checkout), "check"]) == 1
    err = capsys.readouterr().err
    assert "prompts.changed v2 cannot read v1: `approved_by`: field added without a default" in err


def test_check_fails_on_unparsable_schema(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (checkout / "schemas" / "docs.indexed" / "v1.avsc").write_text('{"type": "record"')
    assert main(["--root", str(checkout), "check"]) == 1
    assert "docs.indexed/v1.avsc: not readable JSON" in capsys.readouterr().err


def test_generate_rewrites_stale_files(checkout: Path) -> None:
    (checkout / CATALOG_PATH).write_text("# hand edited\n")
    assert main(["--root", str(checkout), "generate"]) == 0
    assert (checkout / CATALOG_PATH).read_text() == (ROOT / CATALOG_PATH).read_text()
    assert main(["--root", str(checkout), "check"]) == 0


def test_help_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmops.contracts", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "generate" in result.stdout
    assert "check" in result.stdout
