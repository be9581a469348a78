"""Prompt files: one YAML file per prompt, read for `push`/`diff` and written by `pull`.

A file holds `name` and the fields of `PromptSpec` (`messages`, optional `variables`,
`model`, `parameters`, `tags`). Reading validates the spec and compiles its templates, so
an unsafe or broken prompt is refused before the service is asked. Writing is
deterministic (fixed key order, defaults left out, block style for multi-line text), so
a pulled file pushes back unchanged and diffs of prompt files stay readable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from llmops.cli.client import CliError
from llmops.prompting import NAME_PATTERN, CompiledPrompt, InvalidPromptError, PromptSpec

_NAME = re.compile(NAME_PATTERN)  # the rule the prompts service applies
SUFFIXES = (".yaml", ".yml")
_FIELDS = ("name", *PromptSpec.model_fields)


@dataclass(frozen=True)
class PromptFile:
    """A prompt read from `path`: valid, with templates that compile."""

    path: Path
    name: str
    spec: PromptSpec


class PromptFileError(CliError):
    """A prompt file that cannot be pushed; the text names the file and every reason."""

    def __init__(self, path: Path, reasons: list[str]) -> None:
        super().__init__(f"{path}: {'; '.join(reasons)}")
        self.path = path
        self.reasons = reasons


def prompt_paths(directory: Path) -> list[Path]:
    """Every prompt file in `directory` (not its subdirectories), in name order."""
    if not directory.is_dir():
        msg = f"{directory} is not a directory"
        raise CliError(msg)
    paths = sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if not paths:
        msg = f"no prompt files (*.yaml, *.yml) in {directory}"
        raise CliError(msg)
    return paths


def read_prompt_file(path: Path) -> PromptFile:
    """Load and validate one prompt file, or raise `PromptFileError` saying why not."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PromptFileError(path, [f"cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise PromptFileError(path, ["is not UTF-8 text"]) from exc
    except yaml.YAMLError as exc:
        raise PromptFileError(path, [f"is not valid YAML: {_one_line(exc)}"]) from exc
    if not isinstance(document, dict):
        raise PromptFileError(path, ["must be a YAML mapping with `name` and `messages`"])

    reasons: list[str] = []
    name = document.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        reasons.append(f"name must match {NAME_PATTERN}, not {name!r}")
    unknown = sorted(str(key) for key in document if key not in _FIELDS)
    if unknown:
        reasons.append(f"unknown keys {', '.join(unknown)} (allowed: {', '.join(_FIELDS)})")
    fields = {key: value for key, value in document.items() if key in _FIELDS and key != "name"}
    try:
        spec = PromptSpec.model_validate(fields)
    except ValidationError as exc:
        reasons += [
            f"{'.'.join(str(part) for part in error['loc']) or '*'}: {error['msg']}"
            for error in exc.errors()
        ]
        raise PromptFileError(path, reasons) from exc
    try:
        CompiledPrompt(spec)
    except InvalidPromptError as exc:
        reasons += exc.reasons
    if reasons:
        raise PromptFileError(path, reasons)
    assert isinstance(name, str)  # checked above: a bad name is among the reasons
    return PromptFile(path=path, name=name, spec=spec)


def dump_prompt(name: str, spec: PromptSpec) -> str:
    """The YAML text of a prompt file: what `pull` writes and `diff` compares."""
    document: dict[str, Any] = {"name": name, **spec.model_dump(mode="json", exclude_defaults=True)}
    return yaml.dump(
        document,
        Dumper=_PromptDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1_000_000,  # never fold long lines: a changed word should change one line
    )


class _PromptDumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings as `|` blocks and indented list items."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML still falls back to a quoted scalar when a block cannot hold the text
    # exactly (e.g. trailing spaces on a line), so the round trip stays lossless.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_PromptDumper.add_representer(str, _represent_str)


def _one_line(error: yaml.YAMLError) -> str:
    return " ".join(str(error).split())
