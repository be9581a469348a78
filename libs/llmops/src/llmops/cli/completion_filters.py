"""Selecting production completions from the command line: the same flags and the same
request fields for every command that selects them (evaluation datasets, feedback exports)."""

from __future__ import annotations

import argparse
import re
from typing import Any

from llmops.cli.client import CliError

_PROMPT_VERSION = re.compile(r"^(?P<name>[^@:]+)(?:[@:]v?(?P<version>\d+))?$")


def add_filter_arguments(
    parser: argparse.ArgumentParser,
    *,
    model_flags: tuple[str, ...] = ("--served-model",),
    tags: bool = True,
    limit: bool = True,
) -> None:
    """--since, --until, --prompt, the model flags, and --tag and --limit when asked."""
    parser.add_argument("--since", help="completions recorded at or after (ISO 8601)")
    parser.add_argument("--until", help="completions recorded before (ISO 8601)")
    parser.add_argument(
        "--prompt", metavar="NAME[@VERSION]", help="completions of this prompt (or NAME:VERSION)"
    )
    parser.add_argument(*model_flags, dest="served_model", help="completions served by this model")
    if tags:
        parser.add_argument("--tag", action="append", default=[], help="required tag (repeatable)")
    if limit:
        parser.add_argument(
            "--limit", type=int, default=1000, help="most completions (default 1000)"
        )


def selection_of(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields of the flags `add_filter_arguments` added."""
    selection: dict[str, Any] = {}
    if getattr(args, "limit", None) is not None:
        selection["limit"] = args.limit
    if getattr(args, "tag", None):
        selection["tags"] = args.tag
    if args.since:
        selection["since"] = args.since
    if args.until:
        selection["until"] = args.until
    if args.served_model:
        selection["model"] = args.served_model
    if args.prompt:
        name, version = prompt_ref(args.prompt)
        selection["prompt_name"] = name
        if version is not None:
            selection["prompt_version"] = version
    return selection


def prompt_ref(ref: str) -> tuple[str, int | None]:
    """`NAME`, `NAME@VERSION` or `NAME:VERSION` (a prompt's name and version number)."""
    match = _PROMPT_VERSION.match(ref)
    if match is None:
        raise CliError(
            f"not a prompt version: {ref!r} (expected NAME, NAME@VERSION or NAME:VERSION)"
        )
    return match["name"], int(match["version"]) if match["version"] else None
