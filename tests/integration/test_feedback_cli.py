"""`llmops feedback` against the real feedback service: the queue worst first, a review,
and the SFT and preference exports as files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from feedback_stack import completion, feedback_service, submission

from llmops.cli.main import main as cli
from llmops.events.catalog import Thumbs
from llmops.testing import SettingsFactory, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]


async def test_reviewers_work_the_queue_and_export_from_the_command_line(
    service_settings: SettingsFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with feedback_service(service_settings) as fb:
        await fb.publish(
            completion("c-bad", question="Where is Rotterdam?", output="In Belgium."),
            completion("c-meh", question="Opening hours?", output="Sometimes."),
        )
        await fb.stored("c-bad", "c-meh")
        await fb.publish(
            submission("c-bad", "u1", thumbs=Thumbs.DOWN),
            submission("c-meh", "u1", rating=2),
        )
        common = ["--url", fb.url, "--tenant", "acme"]

        async def run(*args: str) -> tuple[int, str]:
            capsys.readouterr()
            status = await asyncio.to_thread(cli, ["feedback", *args])
            captured = capsys.readouterr()
            return status, captured.out + captured.err

        async def both_queued() -> Any:
            status, out = await run("queue", "--json", *common)
            lines = [json.loads(line) for line in out.splitlines()]
            return lines if status == 0 and len(lines) == 2 else None

        queued = await wait_until(both_queued, timeout=60, what="two queued completions")
        status, table = await run("queue", *common)
        reviewed = await run(
            "review", "c-bad", "--correct", "In the Netherlands.", "--reviewer", "ana", *common
        )
        _, remaining = await run("queue", "--json", *common)
        sft, preferences = tmp_path / "sft.jsonl", tmp_path / "dpo.jsonl"
        exported = await run("export", "sft", "-o", str(sft), *common)
        paired = await run("export", "preferences", "-o", str(preferences), *common)
        refused = await run("review", "c-bad", "--approve", "--reviewer", "bo", *common)

    assert [entry["completion_id"] for entry in queued] == ["c-bad", "c-meh"]  # worst first
    assert status == 0
    assert "c-bad  score 0.00" in table
    assert "Q: Where is Rotterdam?" in table
    assert "A: In Belgium." in table
    assert reviewed == (0, "c-bad: corrected\n")
    assert [json.loads(line)["completion_id"] for line in remaining.splitlines()] == ["c-meh"]
    assert exported[0] == paired[0] == 0
    (line,) = [json.loads(line) for line in sft.read_text().splitlines()]
    assert line["messages"][-1] == {"role": "assistant", "content": "In the Netherlands."}
    (pair,) = [json.loads(line) for line in preferences.read_text().splitlines()]
    assert (pair["chosen"], pair["rejected"]) == ("In the Netherlands.", "In Belgium.")
    assert refused[0] == 1  # a reviewed completion is not reviewed again, and says why
    assert "(409)" in refused[1]
    assert "already reviewed (correct by ana" in refused[1]
