"""`llmops prompts`: prompts as code, kept in YAML files and synced with the prompts service.

`push` creates a version only for files whose spec changed (the service is idempotent on
content), `pull` writes the version behind a label, `diff` compares files with it (for
CI), `promote` moves a label.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from llmops.cli.client import CliError, ServiceClient, ServiceError, ServiceUnreachable
from llmops.cli.identity import current_user
from llmops.cli.prompt_files import (
    PromptFile,
    PromptFileError,
    dump_prompt,
    prompt_paths,
    read_prompt_file,
)
from llmops.prompting import DEFAULT_LABEL, PromptSpec, Split, SplitArm

URL_VARIABLE = "LLMOPS_PROMPTS_URL"
DEFAULT_URL = "http://127.0.0.1:8003"
DEFAULT_PUSH_MESSAGE = "pushed by llmops prompts push"


# --- the service's answers: only the fields the commands use; new fields are ignored --------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PromptVersion(_Answer):
    name: str
    version: int
    spec: PromptSpec
    author: str | None = None
    message: str | None = None
    created_at: datetime | None = None
    content_hash: str | None = None


class PushedVersion(PromptVersion):
    created: bool


class PromptSummary(_Answer):
    name: str
    latest_version: int
    archived: bool = False
    labels: dict[str, Split] = {}

    def version_for(self, label: str) -> int:
        """The version the label serves to anonymous traffic (its first arm), else the latest."""
        split = self.labels.get(label)
        return split.arms[0].version if split else self.latest_version


class PromptLabel(_Answer):
    name: str
    label: str
    split: Split
    updated_at: datetime | None = None
    updated_by: str | None = None


class _PromptList(_Answer):
    prompts: list[PromptSummary]


class PromptsClient(ServiceClient):
    """The prompts service's HTTP API, as the commands (and tests) use it."""

    service = "prompts"
    url_variable = URL_VARIABLE

    def push_version(
        self, name: str, spec: PromptSpec, *, author: str, message: str
    ) -> PushedVersion:
        """Create a version, or get the latest back unchanged when its spec is equal."""
        body = {"spec": spec.model_dump(mode="json"), "author": author, "message": message}
        data = self.request("POST", f"/v1/prompts/{_part(name)}/versions", json=body)
        return self.parse(PushedVersion, data, what=f"pushing {name}")

    def list_prompts(self) -> list[PromptSummary]:
        return self.parse(_PromptList, self.request("GET", "/v1/prompts"), what="prompts").prompts

    def get_prompt(self, name: str) -> PromptSummary | None:
        """The prompt with its labels, or None when the service does not know it."""
        data = self._get_or_none(f"/v1/prompts/{_part(name)}")
        return None if data is None else self.parse(PromptSummary, data, what=name)

    def get_version(self, name: str, version: int) -> PromptVersion:
        data = self.request("GET", f"/v1/prompts/{_part(name)}/versions/{version}")
        return self.parse(PromptVersion, data, what=f"{name} v{version}")

    def get_label(self, name: str, label: str) -> PromptLabel | None:
        """Where the label points, or None when it does not exist (yet)."""
        data = self._get_or_none(f"/v1/prompts/{_part(name)}/labels/{_part(label)}")
        return None if data is None else self.parse(PromptLabel, data, what=f"{name} {label}")

    def set_label(
        self, name: str, label: str, version: int, *, actor: str, reason: str | None
    ) -> PromptLabel:
        """Point the label at one version, for all traffic."""
        body = {"version": version, "actor": actor, "reason": reason}
        data = self.request("PUT", f"/v1/prompts/{_part(name)}/labels/{_part(label)}", json=body)
        return self.parse(PromptLabel, data, what=f"{name} {label}")

    def _get_or_none(self, path: str) -> Any:
        try:
            return self.request("GET", path)
        except ServiceError as error:
            if error.status_code == 404:
                return None
            raise


def _part(segment: str) -> str:
    return quote(segment, safe="")


# --- command line -------------------------------------------------------------------------


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `llmops prompts` and its subcommands."""
    default_url = os.environ.get(URL_VARIABLE) or DEFAULT_URL
    url_help = f"prompts service URL (default: ${URL_VARIABLE} or {DEFAULT_URL}; now {default_url})"
    group = groups.add_parser(
        "prompts",
        help="prompts as code: push, pull, diff and promote prompt versions",
        description="Keep prompts in YAML files (one per prompt) in sync with the prompts "
        "service. Each file holds `name`, `messages` (role and Jinja2 content) and optional "
        "`variables` (JSON Schema), `model`, `parameters` and `tags`.",
    )
    group.add_argument("--url", type=_service_url, default=default_url, help=url_help)
    # Also accepted after the subcommand; SUPPRESS keeps the group's value when absent there.
    url_after = argparse.ArgumentParser(add_help=False)
    url_after.add_argument("--url", type=_service_url, default=argparse.SUPPRESS, help=url_help)
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")

    push = commands.add_parser(
        "push",
        parents=[url_after],
        help="create a version for every changed prompt file in DIR",
        description="Validate every *.yaml/*.yml file in DIR locally, then push it: the "
        "service creates a version only when the spec differs from the latest one. Every "
        "file is tried; the exit status is 1 if any failed.",
    )
    push.add_argument("directory", type=Path, metavar="DIR")
    push.add_argument("--author", help="recorded author (default: $USER, git user.name)")
    push.add_argument("--message", default=DEFAULT_PUSH_MESSAGE, help="version message")
    push.add_argument(
        "--label",
        help="also point LABEL at each pushed version (left alone when the prompt is "
        "unchanged and LABEL already serves that version, e.g. in a running canary)",
    )
    push.set_defaults(handler=_push)

    pull = commands.add_parser(
        "pull",
        parents=[url_after],
        help="write DIR/<name>.yaml for every prompt from the version behind a label",
        description="Write one file per prompt (archived ones skipped) from the version "
        "LABEL serves (its first arm), or the latest version when the prompt has no LABEL. "
        "Pushing the written files back changes nothing.",
    )
    pull.add_argument("directory", type=Path, metavar="DIR")
    pull.add_argument("--label", default=DEFAULT_LABEL, help="label to pull (default: %(default)s)")
    pull.set_defaults(handler=_pull)

    diff = commands.add_parser(
        "diff",
        parents=[url_after],
        help="show how prompt files differ from the version behind a label",
        description="For every prompt file in DIR print a unified diff against the version "
        "LABEL serves (or the latest when there is no LABEL). Exit status: 0 when all are "
        "identical, 1 when any differs or is new, 2 on errors.",
    )
    diff.add_argument("directory", type=Path, metavar="DIR")
    diff.add_argument("--label", default=DEFAULT_LABEL, help="label to compare with")
    diff.set_defaults(handler=_diff, error_status=2)

    promote = commands.add_parser(
        "promote",
        parents=[url_after],
        help="point a label at a version",
        description="Point LABEL of prompt NAME at VERSION for all traffic (this replaces "
        "a canary split); the change and its reason are recorded in the label's history.",
    )
    promote.add_argument("name", metavar="NAME", help="prompt name")
    promote.add_argument("--label", required=True, help="label to move, e.g. production")
    promote.add_argument(
        "--to",
        type=_version,
        required=True,
        metavar="VERSION",
        dest="version",
        help="version number to serve, e.g. 3 or v3",
    )
    promote.add_argument("--reason", help="why, kept in the label's history")
    promote.add_argument("--actor", help="who (default: $USER, git user.name)")
    promote.set_defaults(handler=_promote)


def _service_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        msg = f"not an http(s) URL: {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _version(value: str) -> int:
    number = int(value.removeprefix("v")) if value.removeprefix("v").isdigit() else 0
    if number < 1:
        msg = f"not a version number: {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return number


def _push(args: argparse.Namespace) -> int:
    author = args.author or current_user()
    files = _read_files(prompt_paths(args.directory))
    failures = [failure for failure in files if isinstance(failure, PromptFileError)]
    with PromptsClient(args.url) as client:
        for prompt in files:
            if isinstance(prompt, PromptFileError):
                continue
            try:
                _push_one(client, prompt, author=author, message=args.message, label=args.label)
            except ServiceUnreachable:
                raise
            except CliError as error:
                failures.append(PromptFileError(prompt.path, [str(error)]))
    for failure in failures:
        print(f"llmops: error: {failure}", file=sys.stderr)
    if failures:
        msg = f"{len(failures)} of {len(files)} prompt files failed to push"
        raise CliError(msg)
    return 0


def _push_one(
    client: PromptsClient, prompt: PromptFile, *, author: str, message: str, label: str | None
) -> None:
    pushed = client.push_version(prompt.name, prompt.spec, author=author, message=message)
    print(f"{'created' if pushed.created else 'unchanged'} {pushed.name} v{pushed.version}")
    if label is None:
        return
    before = client.get_label(pushed.name, label)
    # An unchanged prompt already served by the label (alone or as a canary arm) keeps it
    # as it is, so re-running a push never collapses a canary someone set up by hand.
    if before is not None and any(arm.version == pushed.version for arm in before.split.arms):
        return
    moved = client.set_label(
        pushed.name, label, pushed.version, actor=author, reason=f"push: {message}"
    )
    print(f"{pushed.name} {_label_change(label, before, moved)}")


def _pull(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    with PromptsClient(args.url) as client:
        prompts = client.list_prompts()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create {directory}: {exc.strerror or exc}"
            raise CliError(msg) from exc
        for summary in sorted(prompts, key=lambda prompt: prompt.name):
            if summary.archived:
                print(f"skipped {summary.name} (archived)")
                continue
            version = client.get_version(summary.name, summary.version_for(args.label))
            path = directory / f"{summary.name}.yaml"
            try:
                path.write_text(dump_prompt(version.name, version.spec), encoding="utf-8")
            except OSError as exc:
                msg = f"cannot write {path}: {exc.strerror or exc}"
                raise CliError(msg) from exc
            source = args.label if args.label in summary.labels else f"latest; no {args.label}"
            print(f"pulled {version.name} v{version.version} ({source}) -> {path}")
    if not prompts:
        print("no prompts in the service")
    return 0


def _diff(args: argparse.Namespace) -> int:
    label: str = args.label
    files = _read_files(prompt_paths(args.directory))
    errors = [failure for failure in files if isinstance(failure, PromptFileError)]
    differ = False
    with PromptsClient(args.url) as client:
        for prompt in files:
            if isinstance(prompt, PromptFileError):
                continue
            summary = client.get_prompt(prompt.name)
            if summary is None:
                differ = True
                print(f"new prompt {prompt.name} ({prompt.path})")
                continue
            remote = client.get_version(prompt.name, summary.version_for(label))
            source = label if label in summary.labels else "latest"
            if remote.spec.content_hash() == prompt.spec.content_hash():
                print(f"identical {prompt.name} v{remote.version} ({source})")
                continue
            differ = True
            sys.stdout.writelines(
                difflib.unified_diff(
                    dump_prompt(remote.name, remote.spec).splitlines(keepends=True),
                    dump_prompt(prompt.name, prompt.spec).splitlines(keepends=True),
                    fromfile=f"{prompt.name} v{remote.version} ({source})",
                    tofile=str(prompt.path),
                )
            )
    for error in errors:
        print(f"llmops: error: {error}", file=sys.stderr)
    if errors:
        return 2
    return 1 if differ else 0


def _promote(args: argparse.Namespace) -> int:
    with PromptsClient(args.url) as client:
        before = client.get_label(args.name, args.label)
        after = client.set_label(
            args.name,
            args.label,
            args.version,
            actor=args.actor or current_user(),
            reason=args.reason,
        )
    print(_label_change(args.label, before, after))
    return 0


def _read_files(paths: list[Path]) -> list[PromptFile | PromptFileError]:
    """Every file read and validated; a failure is kept in place so all are reported."""
    results: list[PromptFile | PromptFileError] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            prompt = read_prompt_file(path)
        except PromptFileError as error:
            results.append(error)
            continue
        if prompt.name in seen:
            reason = f"prompt {prompt.name!r} is already defined in {seen[prompt.name]}"
            results.append(PromptFileError(path, [reason]))
            continue
        seen[prompt.name] = path
        results.append(prompt)
    return results


def _label_change(label: str, before: PromptLabel | None, after: PromptLabel) -> str:
    """`production: v2 -> v3`; splits read `v7 90% + v8 10%`."""
    old = "(none)" if before is None else _describe(before.split.arms)
    return f"{label}: {old} -> {_describe(after.split.arms)}"


def _describe(arms: list[SplitArm]) -> str:
    if len(arms) == 1:
        return f"v{arms[0].version}"
    return " + ".join(f"v{arm.version} {arm.weight:g}%" for arm in arms)
