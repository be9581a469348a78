"""`python -m llmops.contracts generate | check`: the command line of the contract tooling."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from llmops.contracts.avro import SchemaError
from llmops.contracts.check import check_repository, load_schemas_at, summary, write_generated
from llmops.contracts.lint import schema_problems
from llmops.contracts.loading import SchemaLoadError, find_repo_root, load_schemas
from llmops.events.upcasters import UPCASTERS


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv`; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    root = args.root.resolve() if args.root else find_repo_root()
    if args.command == "generate":
        return _generate(root)
    return _check(root, args.against)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llmops.contracts",
        description="Event contracts: schemas/ is the source of truth for every topic.",
    )
    parser.add_argument(
        "--root", type=Path, help="repository root (default: found above the current directory)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "generate",
        help="write llmops/events/catalog.py and docs/topics.md from schemas/",
        description="Validate schemas/ and regenerate the files derived from it.",
    )
    check = commands.add_parser(
        "check",
        help="fail on invalid or undocumented schemas, incompatible versions or stale files",
        description=(
            "Exit 1 listing every problem: unparsable schema, missing doc, bad default, "
            "backward incompatibility without an upcaster, generated files out of date."
        ),
    )
    check.add_argument(
        "--against",
        metavar="GIT_REF",
        help="also require that every version in GIT_REF's schemas/ is kept and only "
        "extended compatibly (e.g. origin/main)",
    )
    return parser


def _generate(root: Path) -> int:
    try:
        schemas = load_schemas(root / "schemas")
    except SchemaLoadError as exc:
        return _fail(exc.problems)
    problems = schema_problems(schemas)
    if problems:
        return _fail(problems)
    try:
        changed = write_generated(root, schemas)
    except SchemaError as exc:
        return _fail(str(exc).splitlines())
    print(f"generated: {', '.join(changed)}" if changed else "generated files already current")
    return 0


def _check(root: Path, against: str | None) -> int:
    try:
        baseline = load_schemas_at(root, against) if against else None
    except SchemaLoadError as exc:
        return _fail(exc.problems)
    schemas, problems = check_repository(root, UPCASTERS, baseline)
    if problems or schemas is None:
        return _fail(problems)
    print(summary(schemas))
    return 0


def _fail(problems: list[str]) -> int:
    print(f"contracts check failed ({len(problems)} problems):", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1
