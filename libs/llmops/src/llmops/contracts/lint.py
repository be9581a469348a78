"""House rules for `schemas/` beyond Avro validity: docs everywhere, sound defaults,
the envelope's shape, payload namespace and the `subject_fields` of every payload.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import fastavro
import fastavro.validation

from llmops.contracts.avro import SchemaError, expand, kind, named_types
from llmops.contracts.loading import ENVELOPE_FILE, SchemaSet

NAMESPACE = "llmops.events"
ENVELOPE_FIELDS = ("id", "type", "schema_version", "source", "time", "tenant", "subject")
"""The envelope's fields, in order; `data` is added per topic (the wire schema)."""


def schema_problems(schemas: SchemaSet) -> list[str]:
    """Every house-rule violation in `schemas/`, each prefixed with the file it is in."""
    problems = [f"{ENVELOPE_FILE}: {p}" for p in envelope_problems(schemas.envelope)]
    for topic, versions in schemas.topics.items():
        for version, schema in versions.items():
            where = f"{topic}/v{version}.avsc"
            problems.extend(f"{where}: {p}" for p in payload_problems(schema))
    return problems


def envelope_problems(envelope: dict[str, Any]) -> list[str]:
    """The envelope is `llmops.events.Envelope` with exactly the documented fields."""
    problems = record_problems(envelope)
    if envelope.get("name") != "Envelope" or envelope.get("namespace") != NAMESPACE:
        problems.append(f"the envelope must be the record {NAMESPACE}.Envelope")
    names = tuple(f.get("name") for f in envelope.get("fields", []))
    if names != ENVELOPE_FIELDS:
        problems.append(
            f"envelope fields are {list(names)}, expected {list(ENVELOPE_FIELDS)} "
            "(`data` is added per topic, never listed)"
        )
    return problems


def payload_problems(schema: dict[str, Any]) -> list[str]:
    """A payload is a documented record in the platform namespace naming its subject fields."""
    problems = record_problems(schema)
    if schema.get("namespace") != NAMESPACE:
        problems.append(f"payload records live in the namespace {NAMESPACE!r}")
    subject_fields = schema.get("subject_fields")
    string_fields = {
        f["name"]
        for f in schema.get("fields", [])
        if f.get("type") in ("string", ["null", "string"])
    }
    if (
        not isinstance(subject_fields, list)
        or not subject_fields
        or not all(isinstance(f, str) for f in subject_fields)
    ):
        problems.append(
            "`subject_fields` must list the payload fields whose first non-null value is the "
            "envelope subject (the Kafka key)"
        )
    else:
        problems.extend(
            f"subject field {name!r} is not a top-level string field"
            for name in subject_fields
            if name not in string_fields
        )
    return problems


def record_problems(schema: dict[str, Any]) -> list[str]:
    """Missing docs and defaults that do not fit their field, anywhere in a schema."""
    try:
        expanded = expand(schema)
    except SchemaError as exc:
        return [str(exc)]
    problems: list[str] = []
    for named in named_types(expanded):
        if not _has_doc(named):
            problems.append(f"{kind(named)} {named['name']} has no doc")
        for field in named.get("fields", []):
            where = f"field {named['name']}.{field['name']}"
            if not _has_doc(field):
                problems.append(f"{where} has no doc")
            if "default" in field:
                problems.extend(f"{where}: {p}" for p in _default_problems(field))
    return problems


def _has_doc(node: dict[str, Any]) -> bool:
    doc = node.get("doc")
    return isinstance(doc, str) and bool(doc.strip())


def _default_problems(field: dict[str, Any]) -> Iterator[str]:
    """A union's default must be a value of its first branch (the Avro specification's rule)."""
    type_ = field["type"]
    target = type_[0] if kind(type_) == "union" else type_
    try:
        parsed = fastavro.parse_schema(copy.deepcopy(target))
        valid = fastavro.validation.validate(field["default"], parsed, raise_errors=False)
    except Exception as exc:  # fastavro raises several unrelated exception types
        yield f"default {field['default']!r} cannot be checked: {exc}"
        return
    if not valid:
        branch = " (the first branch of the union)" if target is not type_ else ""
        yield f"default {field['default']!r} is not a value of {kind(target)}{branch}"
