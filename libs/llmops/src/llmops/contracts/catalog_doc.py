"""Generating `docs/topics.md`: the human-readable topic catalog, rendered from `schemas/`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from llmops.contracts.avro import describe, expand, kind, short_name
from llmops.contracts.loading import SchemaSet

TOPICS_DOC_PATH = "docs/topics.md"
"""Where the generated catalog lives, relative to the repository root."""

HEADERS = (
    ("traceparent", "W3C trace context of the producing span; consumers continue the trace."),
    ("tracestate", "W3C vendor trace state, when the producer has one."),
    (
        "content-type",
        "`application/json` (default: the envelope as a JSON object) or `application/avro` "
        "(Avro binary of the topic's wire schema, without a container header).",
    ),
    (
        "schema-version",
        "The envelope's `schema_version`: lets a consumer pick the writer schema before decoding "
        "Avro, and upcast older versions.",
    ),
    ("event-type", "The envelope's `type` (the payload record name)."),
)


def render_topics_doc(schemas: SchemaSet) -> str:
    """The Markdown of `docs/topics.md` for `schemas`."""
    out = [
        "# Topic catalog\n\n",
        "<!-- GENERATED from schemas/ by `python -m llmops.contracts generate` "
        "(`make schemas`). Do not edit by hand. -->\n\n",
        "Every event is an [envelope](#envelope) whose `data` is the topic's payload record. "
        "The Kafka message key is the envelope `subject`: the id of the entity the event is "
        "about, so one entity's events stay ordered in one partition. Messages that fail "
        "validation, or keep failing after retries, go to the topic's dead-letter topic "
        "`<topic>.dlq` with the original headers. Schemas evolve by the rules in "
        "[schemas/README.md](../schemas/README.md).\n\n",
        "## Topics\n\n",
        "| Topic | Event type | Key (subject) | Version | Kept versions | DLQ |\n",
        "|---|---|---|---|---|---|\n",
    ]
    for topic in sorted(schemas.topics):
        latest = schemas.latest(topic)
        out.append(
            f"| [`{topic}`](#{_anchor(topic)}) | `{short_name(latest['name'])}` | "
            f"{_subject(latest)} | {schemas.latest_version(topic)} | "
            f"{', '.join(str(v) for v in schemas.topics[topic])} | `{topic}.dlq` |\n"
        )
    out += ["\n## Envelope\n\n", _cell_text(schemas.envelope.get("doc", "")), "\n\n"]
    out += _field_table(schemas.envelope)
    out.append(
        "| `data` | the topic's payload record | | The typed payload; its schema is "
        "`schemas/<topic>/v<schema_version>.avsc`. |\n"
    )
    out += ["\n## Kafka headers\n\n", "| Header | Value |\n", "|---|---|\n"]
    out += [f"| `{name}` | {text} |\n" for name, text in HEADERS]
    for topic in sorted(schemas.topics):
        out += _topic_section(schemas, topic)
    return "".join(out)


def _topic_section(schemas: SchemaSet, topic: str) -> list[str]:
    latest = schemas.latest(topic)
    version = schemas.latest_version(topic)
    kept = ", ".join(f"v{v}" for v in schemas.topics[topic])
    out = [
        f"\n## `{topic}`\n\n",
        f"- Event type: `{short_name(latest['name'])}`\n",
        f"- Key (subject): {_subject(latest)}\n",
        f"- Current version: {version} (`schemas/{topic}/v{version}.avsc`); kept versions: "
        f"{kept}\n",
        f"- Dead-letter topic: `{topic}.dlq`\n\n",
        _cell_text(latest.get("doc", "")),
        "\n\n",
    ]
    return out + _field_table(latest)


def _subject(schema: dict[str, Any]) -> str:
    fields = schema.get("subject_fields") or []
    return " or ".join(f"`{name}`" for name in fields) or "-"


def _field_table(schema: dict[str, Any]) -> list[str]:
    rows = ["| Field | Type | Default | Description |\n", "|---|---|---|---|\n"]
    for path, field in _fields(expand(schema), ""):
        default = f"`{json.dumps(field['default'])}`" if "default" in field else ""
        type_ = _cell_text(describe(field["type"]))
        rows.append(
            f"| `{path}` | `{type_}` | {default} | "
            f"{_cell_text(field.get('doc', ''))}{_symbols(field['type'])} |\n"
        )
    return rows


def _fields(record: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field of a record and of the records nested in it, with its path."""
    for field in record["fields"]:
        path = prefix + field["name"]
        yield path, field
        yield from _nested(field["type"], path)


def _nested(schema: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    k = kind(schema)
    if k == "record":
        yield from _fields(schema, f"{path}.")
    elif k == "union":
        for branch in schema:
            yield from _nested(branch, path)
    elif k == "array":
        yield from _nested(schema["items"], f"{path}[]")
    elif k == "map":
        yield from _nested(schema["values"], f"{path}{{}}")


def _symbols(schema: Any) -> str:
    """For enum-typed fields: the symbols, so the table is complete on its own."""
    k = kind(schema)
    if k == "enum":
        return " One of: " + ", ".join(f"`{s}`" for s in schema["symbols"]) + "."
    if k == "union":
        return "".join(_symbols(branch) for branch in schema)
    if k == "array":
        return _symbols(schema["items"])
    if k == "map":
        return _symbols(schema["values"])
    return ""


def _cell_text(text: str) -> str:
    """One line of Markdown that is safe inside a table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _anchor(topic: str) -> str:
    """GitHub's anchor for a heading made of the topic name in backticks."""
    return topic.replace(".", "")
