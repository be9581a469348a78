"""Deterministic example data for any Avro schema, for tests and compatibility checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from llmops.contracts.avro import SchemaError, expand, kind, logical_type

EXAMPLE_TIME = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
"""The instant every timestamp of an example takes (millisecond precision, UTC)."""

_NUMBERS: dict[str, Any] = {"int": 3, "long": 3, "float": 0.5, "double": 0.5}


def example_payload(schema: dict[str, Any]) -> dict[str, Any]:
    """An example datum for a record schema that fills every field.

    Unions take their first non-null branch, arrays hold one item and maps one entry, enums
    take their first symbol, strings name their field path and timestamps are timezone-aware
    `datetime`s. The result is a Python datum: it validates with the generated pydantic
    model and can be written with fastavro as is (for JSON, dump it through the model).
    """
    datum = example_datum(schema)
    if not isinstance(datum, dict):
        raise SchemaError("example_payload needs a record schema")
    return datum


def example_datum(schema: Any) -> Any:
    """An example value for any Avro (sub)schema; see `example_payload`."""
    return _example(expand(schema), "", minimal=False)


def minimal_datum(schema: Any) -> Any:
    """The smallest valid value: unions take their first branch (null for optional fields),
    arrays and maps are empty; other values as in `example_payload`.
    """
    return _example(expand(schema), "", minimal=True)


def _example(schema: Any, path: str, *, minimal: bool) -> Any:
    k = kind(schema)
    if k == "union":
        branches = schema if minimal else [b for b in schema if kind(b) != "null"] or schema
        return _example(branches[0], path, minimal=minimal)
    if k == "record":
        prefix = f"{path}." if path else ""
        return {
            f["name"]: _example(f["type"], prefix + f["name"], minimal=minimal)
            for f in schema["fields"]
        }
    if k == "enum":
        return schema["symbols"][0]
    if k == "array":
        return [] if minimal else [_example(schema["items"], f"{path}[0]", minimal=minimal)]
    if k == "map":
        return (
            {} if minimal else {"key": _example(schema["values"], f"{path}.key", minimal=minimal)}
        )
    if k == "fixed":
        return bytes(range(schema["size"]))
    logical = logical_type(schema)
    if logical in ("timestamp-millis", "timestamp-micros"):
        return EXAMPLE_TIME
    if logical == "date":
        return EXAMPLE_TIME.date()
    if logical in ("time-millis", "time-micros"):
        return EXAMPLE_TIME.time()
    if logical == "local-timestamp-millis":
        return EXAMPLE_TIME.replace(tzinfo=None)
    if k == "string":
        return f"example-{path}" if path else "example"
    if k == "bytes":
        return f"example-{path}".encode()
    if k == "boolean":
        return True
    if k == "null":
        return None
    if k in _NUMBERS:
        return _NUMBERS[k]
    raise SchemaError(f"no example for type {schema!r} at {path or 'the root'}")
