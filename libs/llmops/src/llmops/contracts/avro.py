"""Avro schema helpers: name resolution, inlining named references, walking types.

Schemas are handled as the plain JSON values of the `.avsc` files. `expand` turns a schema
into a tree where every reference to a named type is replaced by its definition, so the
other modules (compatibility, samples, code generation) never resolve names themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})

AvroType = Any
"""A schema or part of one: a type name, a union list or a dict with a `type`."""


class SchemaError(ValueError):
    """A schema is malformed in a way the contract tooling cannot work with."""


def kind(schema: AvroType) -> str:
    """The Avro type of a (sub)schema: a primitive, `record`, `enum`, `array`, `union`..."""
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema if schema in PRIMITIVES else "reference"
    if isinstance(schema, dict):
        inner = schema.get("type")
        if isinstance(inner, str) and (inner in PRIMITIVES or inner in NAMED):
            return "record" if inner == "error" else inner
        if inner in ("array", "map"):
            return str(inner)
        return kind(inner)
    raise SchemaError(f"not an Avro schema: {schema!r}")


def fullname(name: str, namespace: str | None) -> str:
    """The full name of a named type: names containing a dot are already full."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def short_name(name: str) -> str:
    """The last component of a (full) name."""
    return name.rpartition(".")[2]


def logical_type(schema: AvroType) -> str | None:
    """The `logicalType` of a primitive written as a dict, if any."""
    if isinstance(schema, dict):
        value = schema.get("logicalType")
        return value if isinstance(value, str) else None
    return None


def expand(schema: AvroType, namespace: str = "") -> AvroType:
    """Return a copy of `schema` with every named reference replaced by its definition.

    Named types in the result carry their full name in `name` and no `namespace`. Recursive
    types are refused: the platform's payloads are trees, and code generation relies on it.
    """
    return _expand(schema, namespace, {}, set())


def _expand(schema: AvroType, namespace: str, defined: dict[str, Any], open_: set[str]) -> Any:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        name = fullname(schema, namespace)
        if name not in defined and schema in defined:
            name = schema
        if name in open_:
            raise SchemaError(f"recursive type {name} is not supported")
        if name not in defined:
            raise SchemaError(f"unknown type {schema!r} (named types must be defined before use)")
        return defined[name]
    if isinstance(schema, list):
        return [_expand(branch, namespace, defined, open_) for branch in schema]
    if not isinstance(schema, dict) or "type" not in schema:
        raise SchemaError(f"not an Avro schema: {schema!r}")
    type_ = schema["type"]
    if type_ in ("array", "map"):
        key = "items" if type_ == "array" else "values"
        if key not in schema:
            raise SchemaError(f"{type_} without {key!r}")
        return {**schema, key: _expand(schema[key], namespace, defined, open_)}
    if not isinstance(type_, str) or type_ not in NAMED:
        if isinstance(type_, str) and type_ in PRIMITIVES:
            return dict(schema)
        return _expand(type_, namespace, defined, open_)
    type_name = schema.get("name")
    if not isinstance(type_name, str) or not type_name:
        raise SchemaError(f"{type_} without a name")
    full = fullname(type_name, str(schema.get("namespace") or namespace))
    if full in defined or full in open_:
        raise SchemaError(f"type {full} is defined twice in one schema")
    inner_ns = full.rpartition(".")[0]
    result = {k: v for k, v in schema.items() if k != "namespace"}
    result["name"] = full
    if type_ in ("record", "error"):
        open_.add(full)
        fields = []
        for field in schema.get("fields", []):
            if not isinstance(field, dict) or "name" not in field or "type" not in field:
                raise SchemaError(f"malformed field in {full}: {field!r}")
            fields.append({**field, "type": _expand(field["type"], inner_ns, defined, open_)})
        open_.discard(full)
        result["fields"] = fields
    defined[full] = result
    return result


def named_types(expanded: AvroType) -> Iterator[dict[str, Any]]:
    """Yield every named type of an expanded schema, dependencies before dependents."""
    seen: set[str] = set()
    yield from _named_types(expanded, seen)


def _named_types(schema: AvroType, seen: set[str]) -> Iterator[dict[str, Any]]:
    k = kind(schema)
    if k == "union":
        for branch in schema:
            yield from _named_types(branch, seen)
    elif k == "array":
        yield from _named_types(schema["items"], seen)
    elif k == "map":
        yield from _named_types(schema["values"], seen)
    elif k in ("record", "enum", "fixed"):
        for field in schema.get("fields", []):
            yield from _named_types(field["type"], seen)
        if schema["name"] not in seen:
            seen.add(schema["name"])
            yield schema


def describe(schema: AvroType) -> str:
    """A short human-readable rendering of a type, e.g. `null | string` or `array<Chunk>`."""
    k = kind(schema)
    if k == "union":
        return " | ".join(describe(branch) for branch in schema)
    if k == "array":
        return f"array<{describe(schema['items'])}>"
    if k == "map":
        return f"map<{describe(schema['values'])}>"
    if k in ("record", "enum", "fixed"):
        return short_name(schema["name"])
    if k == "reference":
        return short_name(schema)
    logical = logical_type(schema)
    return f"{k} ({logical})" if logical else k
