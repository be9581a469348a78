"""Reading `schemas/`: the envelope and every kept version of every topic's payload schema."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

ENVELOPE_FILE = "envelope.avsc"
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")

Schema = dict[str, Any]


class SchemaLoadError(Exception):
    """`schemas/` could not be read: files that are not JSON or not valid Avro."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class SchemaSet:
    """Everything in `schemas/`: the envelope and `{topic: {version: payload schema}}`."""

    envelope: Schema
    topics: dict[str, dict[int, Schema]]

    def latest_version(self, topic: str) -> int:
        """The highest kept version of a topic: the one code writes."""
        return max(self.topics[topic])

    def latest(self, topic: str) -> Schema:
        """The payload schema at the highest kept version of a topic."""
        return self.topics[topic][self.latest_version(topic)]


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` (default: cwd) holding `schemas/envelope.avsc`.

    Falls back to the checkout this module lives in, so the tool also works from elsewhere.
    """
    candidates = [start or Path.cwd()]
    candidates.append(Path(__file__).resolve())
    for candidate in candidates:
        for directory in (candidate, *candidate.parents):
            if (directory / "schemas" / ENVELOPE_FILE).is_file():
                return directory
    raise FileNotFoundError(f"no schemas/{ENVELOPE_FILE} found above {candidates[0]}")


def read_schema(path: Path) -> Schema:
    """Read one `.avsc` file and validate it with fastavro; raises SchemaLoadError."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaLoadError([f"{path}: not readable JSON: {exc}"]) from exc
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaLoadError([f"{path}: the top level must be an Avro record"])
    try:
        # parse a copy so the returned dict stays exactly the file's JSON
        fastavro.parse_schema(copy.deepcopy(schema))
    except Exception as exc:  # fastavro raises several unrelated exception types
        raise SchemaLoadError([f"{path}: invalid Avro schema: {exc}"]) from exc
    return schema


def load_schemas(schemas_dir: Path) -> SchemaSet:
    """Load and fastavro-validate `schemas/`; raises SchemaLoadError listing every bad file."""
    problems: list[str] = []
    envelope: Schema = {}
    try:
        envelope = read_schema(schemas_dir / ENVELOPE_FILE)
    except SchemaLoadError as exc:
        problems.extend(exc.problems)
    topics: dict[str, dict[int, Schema]] = {}
    for topic_dir in sorted(p for p in schemas_dir.iterdir() if p.is_dir()):
        versions: dict[int, Schema] = {}
        for path in sorted(topic_dir.iterdir()):
            match = _VERSION_FILE.match(path.name)
            if match is None:
                if path.suffix == ".avsc":
                    problems.append(f"{path}: schema files must be named v<N>.avsc")
                continue
            try:
                versions[int(match.group(1))] = read_schema(path)
            except SchemaLoadError as exc:
                problems.extend(exc.problems)
        if not versions:
            problems.append(f"{topic_dir}: no v<N>.avsc schema")
            continue
        missing = sorted(set(range(1, max(versions) + 1)) - set(versions))
        if missing:
            problems.append(
                f"{topic_dir}: versions {missing} are missing; every previous version is kept"
            )
        topics[topic_dir.name] = dict(sorted(versions.items()))
    if problems:
        raise SchemaLoadError(problems)
    return SchemaSet(envelope=envelope, topics=topics)
