"""`llmops prompts` against the real prompts service (Kafka + MongoDB protocol), in process.

The service runs on a free port in this event loop (`llmops.testing.serving`); the CLI runs through
`main([...])` in a thread so the loop keeps serving. Assertions read the service's API.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmops.cli.main import main
from llmops.testing import serving
from llmops_prompts.app import create_app
from llmops_prompts.settings import PromptsSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

SUPPORT_ANSWER = """\
name: support-answer
messages:
  - role: system
    content: |
      You answer questions about {{ product }}.
      Be brief and kind.
  - role: user
    content: "{{ question }}"
variables:
  type: object
  properties:
    product: {type: string}
    question: {type: string}
  required: [product, question]
model: gpt-4o-mini
parameters:
  temperature: 0.2
tags: [support]
"""

SUMMARIZE = """\
name: summarize
messages:
  - role: user
    content: "Summarize in {{ words }} words: {{ text }}"
"""


@dataclass
class Run:
    status: int
    out: str
    err: str


@dataclass
class PromptsService:
    url: str
    api: httpx.AsyncClient

    async def get(self, path: str, *, expect: int = 200) -> Any:
        response = await self.api.get(path)
        assert response.status_code == expect, response.text
        return response.json()


@pytest.fixture
async def service(service_settings: Callable[..., Any]) -> AsyncIterator[PromptsService]:
    """The real prompts app served over HTTP on a free port until the test ends."""
    app = create_app(service_settings(PromptsSettings))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as api:
        yield PromptsService(url=url, api=api)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    """Run `llmops ARGS` in a thread; returns its exit status and what it printed."""

    async def run(*args: str | Path) -> Run:
        capsys.readouterr()
        status = await asyncio.to_thread(main, [str(arg) for arg in args])
        captured = capsys.readouterr()
        return Run(status, captured.out, captured.err)

    return run


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "prompts"
    directory.mkdir()
    (directory / "support-answer.yaml").write_text(SUPPORT_ANSWER)
    (directory / "summarize.yml").write_text(SUMMARIZE)
    return directory


async def test_push_creates_versions_only_for_changed_files(
    service: PromptsService, cli: Callable[..., Any], prompts_dir: Path
) -> None:
    first = await cli("prompts", "--url", service.url, "push", prompts_dir, "--author", "ada")
    assert first.status == 0, first.err
    assert first.out.splitlines() == ["created summarize v1", "created support-answer v1"]

    again = await cli("prompts", "push", prompts_dir, "--url", service.url)
    assert again.status == 0, again.err
    assert again.out.splitlines() == ["unchanged summarize v1", "unchanged support-answer v1"]
    for name in ("support-answer", "summarize"):
        prompt = await service.get(f"/v1/prompts/{name}")
        assert [v["version"] for v in prompt["versions"]] == [1]
        assert prompt["versions"][0]["author"] == "ada"
        assert prompt["versions"][0]["message"] == "pushed by llmops prompts push"

    edited = SUMMARIZE.replace("Summarize in", "Summarize, plainly, in")
    (prompts_dir / "summarize.yml").write_text(edited)
    third = await cli("prompts", "--url", service.url, "push", prompts_dir, "--message", "plain")
    assert third.status == 0, third.err
    assert third.out.splitlines() == ["created summarize v2", "unchanged support-answer v1"]

    summarize = await service.get("/v1/prompts/summarize")
    assert summarize["latest_version"] == 2
    assert [v["message"] for v in summarize["versions"]][-1] == "plain"
    v2 = await service.get("/v1/prompts/summarize/versions/2")
    assert v2["spec"]["messages"][0]["content"].startswith("Summarize, plainly, in")
    support = await service.get("/v1/prompts/support-answer")
    assert support["latest_version"] == 1
    stored = (await service.get("/v1/prompts/support-answer/versions/1"))["spec"]
    assert stored["messages"][0]["content"] == (
        "You answer questions about {{ product }}.\nBe brief and kind.\n"
    )
    assert stored["variables"]["required"] == ["product", "question"]
    assert (stored["model"], stored["parameters"], stored["tags"]) == (
        "gpt-4o-mini",
        {"temperature": 0.2},
        ["support"],
    )


async def test_diff_exits_1_on_local_edits_and_0_when_identical(
    service: PromptsService, cli: Callable[..., Any], prompts_dir: Path
) -> None:
    assert (await cli("prompts", "--url", service.url, "push", prompts_dir)).status == 0

    same = await cli("prompts", "--url", service.url, "diff", prompts_dir)
    assert same.status == 0, same.out + same.err
    assert "identical support-answer v1 (latest)" in same.out

    edited = SUPPORT_ANSWER.replace("Be brief and kind.", "Be brief, kind and exact.")
    (prompts_dir / "support-answer.yaml").write_text(edited)
    (prompts_dir / "greet.yaml").write_text(
        "name: greet\nmessages:\n  - {role: user, content: Hello}\n"
    )
    changed = await cli("prompts", "--url", service.url, "diff", prompts_dir)
    assert changed.status == 1, changed.err
    assert "-      Be brief and kind.\n" in changed.out
    assert "+      Be brief, kind and exact.\n" in changed.out
    assert "--- support-answer v1 (latest)" in changed.out
    assert "new prompt greet" in changed.out
    assert "identical summarize v1" in changed.out
    # diff only reads: the service still has one version and no `greet`
    assert (await service.get("/v1/prompts/support-answer"))["latest_version"] == 1
    await service.get("/v1/prompts/greet", expect=404)

    # against a label: production still serves v1 after v2 is pushed
    assert (await cli("prompts", "--url", service.url, "push", prompts_dir)).status == 0
    promoted = await cli(
        "prompts", "--url", service.url, "promote", "support-answer", "--label", "production",
        "--to", "1",
    )  # fmt: skip
    assert promoted.status == 0, promoted.err
    vs_production = await cli("prompts", "--url", service.url, "diff", prompts_dir)
    assert vs_production.status == 1
    assert "--- support-answer v1 (production)" in vs_production.out
    vs_latest = await cli("prompts", "--url", service.url, "diff", prompts_dir, "--label", "none")
    assert vs_latest.status == 0, vs_latest.out

    (prompts_dir / "broken.yaml").write_text("name: broken\nmessages: []\n")
    broken = await cli("prompts", "--url", service.url, "diff", prompts_dir)
    assert broken.status == 2
    assert "broken.yaml" in broken.err


async def test_pull_writes_the_labelled_version_and_pushes_back_unchanged(
    service: PromptsService, cli: Callable[..., Any], prompts_dir: Path, tmp_path: Path
) -> None:
    assert (await cli("prompts", "--url", service.url, "push", prompts_dir)).status == 0

    pulled_dir = tmp_path / "pulled"
    pulled = await cli("prompts", "--url", service.url, "pull", pulled_dir)
    assert pulled.status == 0, pulled.err
    assert sorted(p.name for p in pulled_dir.iterdir()) == ["summarize.yaml", "support-answer.yaml"]
    text = (pulled_dir / "support-answer.yaml").read_text()
    assert text.startswith("name: support-answer\nmessages:\n")
    assert "content: |\n      You answer questions about {{ product }}.\n" in text

    pushed_back = await cli("prompts", "--url", service.url, "push", pulled_dir)
    assert pushed_back.status == 0, pushed_back.err
    assert pushed_back.out.splitlines() == [
        "unchanged summarize v1",
        "unchanged support-answer v1",
    ]
    assert (await service.get("/v1/prompts/support-answer"))["latest_version"] == 1

    # pulling again writes the same bytes
    await cli("prompts", "--url", service.url, "pull", pulled_dir)
    assert (pulled_dir / "support-answer.yaml").read_text() == text

    # with a label behind the latest version, pull writes the label's version
    edited = SUPPORT_ANSWER.replace("Be brief and kind.", "Be thorough.")
    (prompts_dir / "support-answer.yaml").write_text(edited)
    assert (await cli("prompts", "--url", service.url, "push", prompts_dir)).status == 0
    await cli(
        "prompts", "--url", service.url, "promote", "support-answer", "--label", "stable",
        "--to", "1",
    )  # fmt: skip
    stable_dir = tmp_path / "stable"
    stable = await cli("prompts", "--url", service.url, "pull", stable_dir, "--label", "stable")
    assert stable.status == 0, stable.err
    assert "pulled support-answer v1 (stable)" in stable.out
    assert "pulled summarize v1 (latest; no stable)" in stable.out
    assert (stable_dir / "support-answer.yaml").read_text() == text


async def test_promote_moves_the_label(
    service: PromptsService, cli: Callable[..., Any], prompts_dir: Path
) -> None:
    assert (await cli("prompts", "--url", service.url, "push", prompts_dir)).status == 0
    (prompts_dir / "summarize.yml").write_text(SUMMARIZE.replace("words:", "words or fewer:"))
    assert (await cli("prompts", "--url", service.url, "push", prompts_dir)).status == 0

    first = await cli(
        "prompts", "--url", service.url, "promote", "summarize", "--label", "production",
        "--to", "1", "--actor", "grace",
    )  # fmt: skip
    assert first.status == 0, first.err
    assert first.out.strip() == "production: (none) -> v1"

    second = await cli(
        "prompts", "--url", service.url, "promote", "summarize", "--label", "production",
        "--to", "v2", "--actor", "grace", "--reason", "shorter answers",
    )  # fmt: skip
    assert second.status == 0, second.err
    assert second.out.strip() == "production: v1 -> v2"

    label = await service.get("/v1/prompts/summarize/labels/production")
    assert label["split"]["arms"] == [{"version": 2, "weight": 100}]
    assert label["updated_by"] == "grace"
    history = await service.get("/v1/prompts/summarize/labels/production/history")
    assert [move["reason"] for move in history["moves"]] == [None, "shorter answers"]

    missing = await cli(
        "prompts", "--url", service.url, "promote", "summarize", "--label", "production",
        "--to", "9",
    )  # fmt: skip
    assert missing.status == 1
    assert missing.err.count("\n") == 1
    assert "has no version 9" in missing.err
    assert "Traceback" not in missing.err
    label = await service.get("/v1/prompts/summarize/labels/production")
    assert label["split"]["arms"] == [{"version": 2, "weight": 100}]


async def test_push_with_label_moves_it_only_when_needed(
    service: PromptsService, cli: Callable[..., Any], prompts_dir: Path
) -> None:
    args = ("prompts", "--url", service.url, "push", prompts_dir, "--label", "staging")
    first = await cli(*args)
    assert first.status == 0, first.err
    assert "summarize staging: (none) -> v1" in first.out
    label = await service.get("/v1/prompts/summarize/labels/staging")
    assert label["split"]["arms"] == [{"version": 1, "weight": 100}]

    again = await cli(*args)
    assert again.status == 0, again.err
    assert "staging" not in again.out
    moves = await service.get("/v1/prompts/summarize/labels/staging/history")
    assert len(moves["moves"]) == 1

    (prompts_dir / "summarize.yml").write_text(SUMMARIZE.replace("Summarize", "Condense"))
    third = await cli(*args)
    assert third.status == 0, third.err
    assert third.out.splitlines() == [
        "created summarize v2",
        "summarize staging: v1 -> v2",
        "unchanged support-answer v1",
    ]
    label = await service.get("/v1/prompts/summarize/labels/staging")
    assert label["split"]["arms"] == [{"version": 2, "weight": 100}]
    support = await service.get("/v1/prompts/support-answer/labels/staging")
    assert support["split"]["arms"] == [{"version": 1, "weight": 100}]


async def test_invalid_files_fail_after_the_others_are_pushed(
    service: PromptsService, cli: Callable[..., Any], prompts_dir: Path
) -> None:
    (prompts_dir / "bad-role.yaml").write_text(
        "name: bad-role\nmessages:\n  - {role: robot, content: hi}\n"
    )
    (prompts_dir / "unsafe.yaml").write_text(
        "name: unsafe\nmessages:\n  - role: user\n    content: \"{{ ''.__class__ }}\"\n"
    )
    (prompts_dir / "not-yaml.yaml").write_text("name: [unclosed\n")

    run = await cli("prompts", "--url", service.url, "push", prompts_dir)

    assert run.status == 1
    errors = run.err.splitlines()
    assert any("bad-role.yaml" in line and "messages.0.role" in line for line in errors)
    assert any("unsafe.yaml" in line and "'__class__' is not allowed" in line for line in errors)
    assert any("not-yaml.yaml" in line and "not valid YAML" in line for line in errors)
    assert errors[-1] == "llmops: error: 3 of 5 prompt files failed to push"
    assert "Traceback" not in run.err
    assert run.out.splitlines() == ["created summarize v1", "created support-answer v1"]
    listed = await service.get("/v1/prompts")
    assert sorted(p["name"] for p in listed["prompts"]) == ["summarize", "support-answer"]
    await service.get("/v1/prompts/unsafe", expect=404)


async def test_an_unreachable_service_is_one_line_that_says_what_to_do(
    cli: Callable[..., Any], prompts_dir: Path
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"  # nothing listens here

    for command, status in [("push", 1), ("pull", 1), ("diff", 2)]:
        run = await cli("prompts", "--url", url, command, prompts_dir)
        assert run.status == status, run.err
        assert run.err.count("\n") == 1, run.err
        assert f"cannot reach the prompts service at {url}" in run.err
        assert "make up" in run.err

    assert (await cli("--help")).status == 0
    assert (await cli("prompts", "push", "--help")).status == 0
