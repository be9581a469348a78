"""Backward compatibility of Avro schemas, per the Avro specification's schema resolution.

A reader schema is backward compatible with a writer schema when every datum written with
the writer can be decoded with the reader: fields the reader adds have defaults, types
change only by Avro promotion, enums keep the writer's symbols (or have an enum default),
unions cover the writer's branches, and named types keep their names (or alias the old one).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Mapping
from typing import Any

import fastavro

from llmops.contracts.avro import describe, expand, kind, logical_type, short_name
from llmops.contracts.loading import SchemaSet
from llmops.contracts.samples import example_datum, minimal_datum

PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
"""Writer type -> reader types it can be read as (Avro 'promotion')."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def backward_problems(reader: dict[str, Any], writer: dict[str, Any]) -> list[str]:
    """Why `reader` cannot read data written with `writer`; empty when it can.

    Each problem names the field path (`usage.prompt_tokens`, `messages[].role`,
    `metadata{}` for map values) and what changed.
    """
    problems: list[str] = []
    _resolve(expand(reader), expand(writer), "", problems)
    return problems


def fastavro_problems(reader: dict[str, Any], writer: dict[str, Any]) -> list[str]:
    """Cross-check with fastavro: write example data with `writer`, read it with `reader`.

    Two data are tried: every field filled (first non-null union branch) and the minimal
    datum (null branches, empty collections). Catches what a real decoder rejects.
    """
    parsed_writer = fastavro.parse_schema(copy.deepcopy(writer))
    parsed_reader = fastavro.parse_schema(copy.deepcopy(reader))
    problems: list[str] = []
    for label, datum in (("full", example_datum(writer)), ("minimal", minimal_datum(writer))):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed_writer, datum)
        buffer.seek(0)
        try:
            fastavro.schemaless_reader(buffer, parsed_writer, parsed_reader)
        except Exception as exc:  # fastavro raises several unrelated exception types
            problems.append(
                f"fastavro cannot read the {label} example written by the writer: {exc}"
            )
    return problems


def compatibility_problems(reader: dict[str, Any], writer: dict[str, Any]) -> list[str]:
    """The rule-based problems, or, when the rules find none, fastavro's (a second opinion)."""
    return backward_problems(reader, writer) or fastavro_problems(reader, writer)


def upcaster_problems(
    reader: dict[str, Any], writer: dict[str, Any], upcast: Upcaster
) -> list[str]:
    """Apply `upcast` to example data of `writer`; the results must be valid `reader` data."""
    parsed_reader = fastavro.parse_schema(copy.deepcopy(reader))
    problems: list[str] = []
    for label, datum in (("full", example_datum(writer)), ("minimal", minimal_datum(writer))):
        try:
            upcast_datum = upcast(copy.deepcopy(datum))
        except Exception as exc:  # report any failure of user code, whatever it raises
            problems.append(f"the upcaster failed on the {label} example: {exc!r}")
            continue
        try:
            fastavro.validation.validate(upcast_datum, parsed_reader, raise_errors=True)
        except Exception as exc:  # fastavro's ValidationError and type errors alike
            problems.append(f"the upcast {label} example is not valid for the new version: {exc}")
    return problems


def evolution_problems(
    schemas: SchemaSet, upcasters: Mapping[tuple[str, int], Upcaster]
) -> list[str]:
    """Check every topic's vN against vN-1: backward compatible, or upcast by a registered
    upcaster for (topic, N-1) whose output is valid vN data.
    """
    problems: list[str] = []
    for topic, versions in schemas.topics.items():
        for version in sorted(versions)[1:]:
            reader, writer = versions[version], versions[version - 1]
            upcast = upcasters.get((topic, version - 1))
            if upcast is not None:
                problems.extend(
                    f"{topic} v{version - 1} -> v{version}: {p}"
                    for p in upcaster_problems(reader, writer, upcast)
                )
                continue
            problems.extend(
                f"{topic} v{version} cannot read v{version - 1}: {p} (make the change backward "
                f"compatible or register an upcaster for ({topic!r}, {version - 1}) in "
                "llmops/events/upcasters.py)"
                for p in compatibility_problems(reader, writer)
            )
    return problems


def full_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Problems of editing a kept version in place: it must stay readable both ways."""
    return [f"new cannot read old: {p}" for p in backward_problems(new, old)] + [
        f"old cannot read new: {p}" for p in backward_problems(old, new)
    ]


def _where(path: str) -> str:
    return f"`{path}`" if path else "the payload record"


def _names_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    """Unqualified names equal, or the writer's name is one of the reader's aliases."""
    wanted = short_name(writer["name"])
    aliases = {short_name(a) for a in reader.get("aliases", [])}
    return short_name(reader["name"]) == wanted or wanted in aliases


def _matches(reader: Any, writer: Any) -> bool:
    """Whether `reader` is the same kind of type as `writer` (same name if named)."""
    rk, wk = kind(reader), kind(writer)
    if rk != wk:
        return False
    return rk not in ("record", "enum", "fixed") or _names_match(reader, writer)


def _pick_branch(union: list[Any], writer: Any) -> Any | None:
    """The reader union branch a writer type resolves to: an exact match, else a promotion."""
    for branch in union:
        if _matches(branch, writer):
            return branch
    promotable = PROMOTIONS.get(kind(writer), frozenset())
    for branch in union:
        if kind(branch) in promotable:
            return branch
    return None


def _target(reader: Any, writer: Any) -> Any | None:
    """The part of `reader` that data of the (non-union) `writer` type is decoded with."""
    if kind(reader) == "union":
        return _pick_branch(reader, writer)
    promotable = PROMOTIONS.get(kind(writer), frozenset())
    return reader if _matches(reader, writer) or kind(reader) in promotable else None


def _resolve(reader: Any, writer: Any, path: str, problems: list[str]) -> None:
    rk, wk = kind(reader), kind(writer)
    if wk == "union":
        for branch in writer:
            target = _target(reader, branch)
            if target is None:
                problems.append(
                    f"{_where(path)}: union narrowed: the writer's branch {describe(branch)} has "
                    f"no match in the reader's type {describe(reader)}"
                )
            else:
                _resolve(target, branch, path, problems)
        return
    if rk == "union":
        target = _target(reader, writer)
        if target is None:
            problems.append(
                f"{_where(path)}: type changed from {describe(writer)} to {describe(reader)}: "
                "no branch of the reader's union can read it"
            )
        else:
            _resolve(target, writer, path, problems)
        return
    if rk != wk:
        if rk in PROMOTIONS.get(wk, frozenset()):
            return
        problems.append(
            f"{_where(path)}: type changed from {describe(writer)} to {describe(reader)}, "
            "which is not an Avro promotion"
        )
        return
    if logical_type(reader) != logical_type(writer):
        problems.append(
            f"{_where(path)}: logical type changed from {describe(writer)} to {describe(reader)}"
        )
    if rk in ("record", "enum", "fixed") and not _names_match(reader, writer):
        problems.append(
            f"{_where(path)}: {rk} renamed from {short_name(writer['name'])} to "
            f"{short_name(reader['name'])} (list the old name in the reader's `aliases`)"
        )
        return
    if rk == "record":
        _resolve_record(reader, writer, path, problems)
    elif rk == "enum":
        dropped = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if dropped and "default" not in reader:
            problems.append(
                f"{_where(path)}: enum {short_name(reader['name'])} dropped symbols "
                f"{', '.join(dropped)} and has no enum `default` to read them as"
            )
    elif rk == "fixed" and reader["size"] != writer["size"]:
        problems.append(
            f"{_where(path)}: fixed size changed from {writer['size']} to {reader['size']}"
        )
    elif rk == "array":
        _resolve(reader["items"], writer["items"], f"{path}[]", problems)
    elif rk == "map":
        _resolve(reader["values"], writer["values"], f"{path}{{}}", problems)


def _resolve_record(
    reader: dict[str, Any], writer: dict[str, Any], path: str, problems: list[str]
) -> None:
    written = {field["name"]: field for field in writer["fields"]}
    prefix = f"{path}." if path else ""
    for field in reader["fields"]:
        names = [field["name"], *field.get("aliases", [])]
        source = next((written[name] for name in names if name in written), None)
        field_path = prefix + field["name"]
        if source is not None:
            _resolve(field["type"], source["type"], field_path, problems)
        elif "default" not in field:
            problems.append(
                f"`{field_path}`: field added without a default, so data written without it "
                "cannot be read"
            )
