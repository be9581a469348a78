"""The whole contract check: schemas valid and documented, versions compatible, generated
files current and, against a git baseline, kept versions only extended compatibly.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llmops.contracts.avro import SchemaError, expand, kind
from llmops.contracts.catalog_doc import TOPICS_DOC_PATH, render_topics_doc
from llmops.contracts.codegen import CATALOG_PATH, catalog_named_types, render_catalog
from llmops.contracts.compat import Upcaster, evolution_problems, full_problems
from llmops.contracts.lint import schema_problems
from llmops.contracts.loading import SchemaLoadError, SchemaSet, load_schemas

RENDERERS: Mapping[str, Callable[[SchemaSet], str]] = {
    CATALOG_PATH: render_catalog,
    TOPICS_DOC_PATH: render_topics_doc,
}
"""Generated file (relative to the repository root) -> the function that renders it."""


def generated_files(schemas: SchemaSet) -> dict[str, str]:
    """The content every generated file must have for `schemas`."""
    return {path: render(schemas) for path, render in RENDERERS.items()}


def stale_files(root: Path, schemas: SchemaSet) -> list[str]:
    """Generated files (relative paths) whose content on disk differs from a fresh render."""
    stale = []
    for path, content in generated_files(schemas).items():
        target = root / path
        if not target.is_file() or target.read_text(encoding="utf-8") != content:
            stale.append(path)
    return stale


def write_generated(root: Path, schemas: SchemaSet) -> list[str]:
    """Write every generated file; returns the relative paths whose content changed."""
    changed = []
    for path, content in generated_files(schemas).items():
        target = root / path
        if not target.is_file() or target.read_text(encoding="utf-8") != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
            changed.append(path)
    return changed


def check_repository(
    root: Path,
    upcasters: Mapping[tuple[str, int], Upcaster],
    baseline: SchemaSet | None = None,
) -> tuple[SchemaSet | None, list[str]]:
    """Run every check on the checkout at `root`; returns the schemas (if loadable) and the
    problems found, each a readable sentence.
    """
    try:
        schemas = load_schemas(root / "schemas")
    except SchemaLoadError as exc:
        return None, exc.problems
    problems = schema_problems(schemas)
    problems += evolution_problems(schemas, upcasters)
    if baseline is not None:
        problems += baseline_problems(baseline, schemas)
    try:
        stale = stale_files(root, schemas)
    except SchemaError as exc:
        problems += [f"cannot generate code: {line}" for line in str(exc).splitlines()]
    else:
        problems += [
            f"{path} is out of date with schemas/: run `make schemas` "
            "(python -m llmops.contracts generate)"
            for path in stale
        ]
    return schemas, problems


def baseline_problems(old: SchemaSet, new: SchemaSet) -> list[str]:
    """Rules that need history: every topic and version of `old` is kept, and a kept version
    was only extended (fields added with defaults), so it reads and is read by its old self.
    """
    problems = []
    for topic, versions in old.topics.items():
        for version, old_schema in versions.items():
            new_schema = new.topics.get(topic, {}).get(version)
            where = f"{topic} v{version}"
            if new_schema is None:
                problems.append(f"{where} was removed; every published version is kept")
                continue
            problems += [
                f"{where} changed in place: {p}" for p in full_problems(old_schema, new_schema)
            ]
            removed = _field_paths(old_schema) - _field_paths(new_schema)
            problems += [
                f"{where} changed in place: field `{path}` was removed; within a version only "
                "add fields with defaults"
                for path in sorted(removed)
            ]
    return problems


def _field_paths(schema: dict[str, Any]) -> set[str]:
    paths: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        k = kind(node)
        if k == "record":
            for field in node["fields"]:
                paths.add(prefix + field["name"])
                walk(field["type"], f"{prefix}{field['name']}.")
        elif k == "union":
            for branch in node:
                walk(branch, prefix)
        elif k == "array":
            walk(node["items"], prefix.rstrip(".") + "[].")
        elif k == "map":
            walk(node["values"], prefix.rstrip(".") + "{}.")

    walk(expand(schema), "")
    return paths


def load_schemas_at(root: Path, ref: str) -> SchemaSet:
    """The `schemas/` of git revision `ref` (e.g. `origin/main`), read without a checkout."""
    listing = _git(root, "ls-tree", "-r", "--name-only", ref, "--", "schemas")
    files = [line for line in listing.splitlines() if line.endswith(".avsc")]
    envelope: dict[str, Any] = {}
    topics: dict[str, dict[int, dict[str, Any]]] = {}
    for name in files:
        schema = json.loads(_git(root, "show", f"{ref}:{name}"))
        parts = Path(name).parts
        if parts == ("schemas", "envelope.avsc"):
            envelope = schema
        elif len(parts) == 3 and parts[2].startswith("v") and parts[2][1:-5].isdigit():
            topics.setdefault(parts[1], {})[int(parts[2][1:-5])] = schema
    return SchemaSet(envelope=envelope, topics=topics)


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SchemaLoadError([f"git {' '.join(args)}: {result.stderr.strip()}"])
    return result.stdout


def summary(schemas: SchemaSet) -> str:
    """One line saying what was checked."""
    versions = sum(len(v) for v in schemas.topics.values())
    types = len(catalog_named_types(schemas))
    return (
        f"contracts ok: {len(schemas.topics)} topics, {versions} schema versions, "
        f"{types} named types; {', '.join(RENDERERS)} up to date"
    )
