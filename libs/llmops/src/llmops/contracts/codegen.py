"""Generating `llmops/events/catalog.py`: the Python binding of `schemas/`.

The module holds the `Topic` enum, a `StrEnum` per Avro enum, a pydantic `Payload` model per
named record (at each topic's highest version), the envelope schema and `CONTRACTS`, which
embeds every kept schema version so runtime code never reads `schemas/`.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from pydantic import BaseModel

from llmops.contracts.avro import SchemaError, expand, kind, logical_type, named_types, short_name
from llmops.contracts.loading import SchemaSet
from llmops.contracts.pysource import INDENT, Code, docstring, py_str, render_call, render_value

CATALOG_PATH = "libs/llmops/src/llmops/events/catalog.py"
"""Where the generated module lives, relative to the repository root."""

HEADER = '''\
"""Topic catalog: every topic, its payload models and its contract.

GENERATED from schemas/ by `python -m llmops.contracts generate` (`make schemas`): do not edit
by hand. Change the Avro schemas and regenerate; `python -m llmops.contracts check` and the
contract tests fail when this module and schemas/ disagree.
"""
'''

_PRIMITIVE_ANNOTATIONS = {
    "string": "str",
    "bytes": "bytes",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "boolean": "bool",
}
_TIMESTAMPS = frozenset({"timestamp-millis", "timestamp-micros"})
_MODULE_NAMES = frozenset(
    {"Any", "Field", "Mapping", "Payload", "StrEnum", "Topic", "TopicContract", "datetime"}
    | {"str", "bytes", "int", "float", "bool", "list", "dict", "None"}
)
_TOPIC_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def topic_member(topic: str) -> str:
    """The `Topic` member name of a topic: `llm.completions` -> `LLM_COMPLETIONS`."""
    return topic.upper().replace(".", "_")


def enum_member(symbol: str) -> str:
    """The `StrEnum` member name of an Avro enum symbol: `completed_with_errors` -> upper."""
    return symbol.upper()


def field_name_problem(name: str) -> str | None:
    """Why an Avro field name cannot be a pydantic field name, or None when it can."""
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "is a Python keyword"
    if name.startswith("_"):
        return "starts with an underscore (pydantic treats it as private)"
    if name.startswith("model_"):
        return "uses pydantic's reserved `model_` prefix"
    if hasattr(BaseModel, name):
        return "shadows a pydantic BaseModel attribute"
    if name in _MODULE_NAMES:
        return "shadows a name the generated module uses"
    return None


def catalog_named_types(schemas: SchemaSet) -> dict[str, dict[str, Any]]:
    """Every named type of the highest versions, by full name, dependencies first.

    Raises SchemaError when one name has two different definitions across topics.
    """
    found: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for topic in sorted(schemas.topics):
        version = schemas.latest_version(topic)
        for named in named_types(expand(schemas.topics[topic][version])):
            name = named["name"]
            if name in found and found[name] != named:
                raise SchemaError(
                    f"{name} is defined differently in {origin[name]} and {topic} v{version}; "
                    "identical names need identical definitions"
                )
            found.setdefault(name, named)
            origin.setdefault(name, f"{topic} v{version}")
    return found


def render_catalog(schemas: SchemaSet) -> str:
    """The source of `llmops/events/catalog.py` for `schemas` (ruff-format stable)."""
    types = catalog_named_types(schemas)
    _check_names(types, schemas)
    enums = [t for t in types.values() if kind(t) == "enum"]
    records = [t for t in types.values() if kind(t) == "record"]
    uses_datetime = any(_uses_timestamp(t) for t in records)
    parts = [HEADER, "\n", _imports(uses_datetime), "\n\n", _topic_enum(schemas)]
    parts += ["\n\n" + _enum_class(t) for t in enums]
    parts += ["\n\n" + _record_class(t) for t in records]
    parts += ["\n\n", _envelope(schemas), "\n", _subject_fields(schemas), "\n", _contracts(schemas)]
    return "".join(parts)


def _check_names(types: dict[str, dict[str, Any]], schemas: SchemaSet) -> None:
    problems: list[str] = []
    classes: dict[str, str] = {}
    for full, named in types.items():
        cls = short_name(full)
        if cls in classes:
            problems.append(f"{full} and {classes[cls]} would both be the Python class {cls}")
        if cls in _MODULE_NAMES:
            problems.append(f"{full}: the class name {cls} clashes with a generated module name")
        classes[cls] = full
        if kind(named) == "enum":
            members = [enum_member(s) for s in named["symbols"]]
            if len(set(members)) != len(members) or any(m.startswith("_") for m in members):
                problems.append(f"{full}: symbols {named['symbols']} do not map to member names")
        for field in named.get("fields", []):
            problem = field_name_problem(field["name"])
            if problem is None and field["name"] in classes:
                problem = "shadows a generated class name"
            if problem:
                problems.append(f"{full}.{field['name']}: field name {problem}; rename it")
    problems.extend(
        f"topic {topic!r} is not `<domain>.<event>` in lowercase"
        for topic in schemas.topics
        if not _TOPIC_NAME.match(topic)
    )
    if problems:
        raise SchemaError("\n".join(problems))


def _uses_timestamp(record: dict[str, Any]) -> bool:
    return any("datetime" in _annotation(field["type"]) for field in record["fields"])


def _imports(uses_datetime: bool) -> str:
    lines = ["from collections.abc import Mapping\n"]
    if uses_datetime:
        lines.append("from datetime import datetime\n")
    lines += ["from enum import StrEnum\n", "from typing import Any\n", "\n"]
    lines += ["from pydantic import Field\n", "\n", "from .base import Payload, TopicContract\n"]
    return "".join(lines)


def _topic_enum(schemas: SchemaSet) -> str:
    lines = [
        "class Topic(StrEnum):\n",
        docstring("Every topic of the platform; dead letters go to `<topic>.dlq`.", 4),
        "\n",
    ]
    lines += [f"    {topic_member(t)} = {py_str(t)}\n" for t in sorted(schemas.topics)]
    return "".join(lines)


def _enum_class(enum: dict[str, Any]) -> str:
    lines = [f"class {short_name(enum['name'])}(StrEnum):\n", docstring(enum.get("doc", ""), 4)]
    lines.append("\n")
    lines += [f"    {enum_member(s)} = {py_str(s)}\n" for s in enum["symbols"]]
    return "".join(lines)


def _record_class(record: dict[str, Any]) -> str:
    lines = [f"class {short_name(record['name'])}(Payload):\n", docstring(record.get("doc", ""), 4)]
    if record["fields"]:
        lines.append("\n")
    for field in record["fields"]:
        head = f"{INDENT}{field['name']}: {_annotation(field['type'])} = "
        kwargs = _default_kwargs(record, field)
        if "doc" in field:
            kwargs.append(("description", " ".join(str(field["doc"]).split())))
        lines.append(head + render_call("Field", kwargs, 4, len(head), 0) + "\n")
    return "".join(lines)


def _annotation(schema: Any) -> str:
    k = kind(schema)
    if k == "union":
        branches = [b for b in schema if kind(b) != "null"]
        if not branches:
            raise SchemaError("a union of only null has no Python type")
        names = list(dict.fromkeys(_annotation(b) for b in branches))
        if len(branches) < len(schema):
            names.append("None")
        return " | ".join(names)
    if k in ("record", "enum"):
        return short_name(schema["name"])
    if k == "array":
        return f"list[{_annotation(schema['items'])}]"
    if k == "map":
        return f"dict[str, {_annotation(schema['values'])}]"
    if k == "fixed":
        return "bytes"
    logical = logical_type(schema)
    if logical in _TIMESTAMPS and k == "long":
        return "datetime"
    if logical is not None:
        raise SchemaError(f"logical type {logical} is not supported by the code generator")
    if k not in _PRIMITIVE_ANNOTATIONS:
        raise SchemaError(f"type {schema!r} has no Python type")
    return _PRIMITIVE_ANNOTATIONS[k]


def _default_kwargs(record: dict[str, Any], field: dict[str, Any]) -> list[tuple[str, Any]]:
    """`Field(...)` arguments for the Avro default of a field (none when it has no default)."""
    if "default" not in field:
        return []
    value = field["default"]
    schema = field["type"][0] if kind(field["type"]) == "union" else field["type"]
    k = kind(schema)
    where = f"{record['name']}.{field['name']}"
    if value is None:
        return [("default", None)]
    if k in ("array", "map") and not value:
        return [("default_factory", Code("list" if k == "array" else "dict"))]
    if k == "enum":
        return [("default", Code(f"{short_name(schema['name'])}.{enum_member(value)}"))]
    if k in ("float", "double"):
        return [("default", float(value))]
    if k in ("string", "int", "long", "boolean") and logical_type(schema) is None:
        return [("default", value)]
    raise SchemaError(f"{where}: the code generator does not support this default: {value!r}")


def _envelope(schemas: SchemaSet) -> str:
    head = "ENVELOPE_SCHEMA: dict[str, Any] = "
    lines = [
        "# A topic's wire schema is this record plus a last field `data` of the payload type.\n",
        head + render_value(schemas.envelope, 0, len(head), 0) + "\n",
    ]
    return "".join(lines)


def _subject_fields(schemas: SchemaSet) -> str:
    head = "SUBJECT_FIELDS: Mapping[Topic, tuple[str, ...]] = "
    entries = {
        Code(f"Topic.{topic_member(t)}"): tuple(schemas.latest(t).get("subject_fields", []))
        for t in sorted(schemas.topics)
    }
    lines = [
        "# Payload fields whose first non-null value is the envelope subject (the Kafka key).\n",
        head + _render_code_dict(entries) + "\n",
    ]
    return "".join(lines)


def _render_code_dict(entries: dict[Code, Any]) -> str:
    if not entries:
        return "{}"
    lines = []
    for key, value in entries.items():
        prefix = f"{INDENT}{key.text}: "
        lines.append(prefix + render_value(value, 4, len(prefix), 1) + ",\n")
    return "{\n" + "".join(lines) + "}"


def _contracts(schemas: SchemaSet) -> str:
    head = "CONTRACTS: Mapping[Topic, TopicContract[Any]] = "
    if not schemas.topics:
        return head + "{}\n"
    lines = [head + "{\n"]
    for topic in sorted(schemas.topics):
        member = f"Topic.{topic_member(topic)}"
        latest = schemas.latest(topic)
        kwargs: list[tuple[str, Any]] = [
            ("topic", Code(member)),
            ("event_type", short_name(latest["name"])),
            ("payload", Code(short_name(latest["name"]))),
            ("version", schemas.latest_version(topic)),
            ("schemas", schemas.topics[topic]),
            ("description", " ".join(str(latest.get("doc", "")).split())),
        ]
        prefix = f"{INDENT}{member}: "
        lines.append(prefix + render_call("TopicContract", kwargs, 4, len(prefix), 1) + ",\n")
    lines.append("}\n")
    return "".join(lines)
