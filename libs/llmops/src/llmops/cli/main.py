"""`llmops`: entry point of the command line; each command group lives in its own module.

A group module (`prompts`, `ingest`, `keys`, `eval` and `tail`) provides
`add_parser(groups)`, which adds its subcommands and sets `handler` on each: a function
of the parsed arguments returning the exit status. Expected failures raise `CliError`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from llmops.cli import evaluation, feedback, ingest, keys, prompts, tail
from llmops.cli.client import CliError

GroupRegistrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
GROUPS: tuple[GroupRegistrar, ...] = (
    prompts.add_parser,
    ingest.add_parser,
    keys.add_parser,
    evaluation.add_parser,
    feedback.add_parser,
    tail.add_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; defaults from the environment are read now, not at import."""
    parser = argparse.ArgumentParser(
        prog="llmops",
        description="Command line of the LLMOps platform.",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    for add_group in GROUPS:
        add_group(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv` (default: the process arguments); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) and usage errors (2), as a status, not an exit
        return exit_.code if isinstance(exit_.code, int) else 1
    try:
        status: int = args.handler(args)
    except CliError as error:
        print(f"llmops: error: {error}", file=sys.stderr)
        return int(getattr(args, "error_status", 1))
    except KeyboardInterrupt:
        print("llmops: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
