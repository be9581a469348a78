"""`llmops feedback`: the annotation queue and the fine-tuning exports.

Talks to the feedback service (`$LLMOPS_FEEDBACK_URL`), for the tenant in `$LLMOPS_TENANT`.
`queue` lists completions waiting for review, worst first; `review` settles one; `export`
writes the SFT or preference (DPO) JSONL that fine-tuning jobs read.

Exit status: 0 success, 1 the service refused or could not be reached (the message says
why), 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from llmops.cli.client import ServiceClient, internal_service_options, write_lines
from llmops.cli.completion_filters import add_filter_arguments, selection_of

URL_VARIABLE = "LLMOPS_FEEDBACK_URL"
DEFAULT_URL = "http://127.0.0.1:8007"
STATUSES = ("pending", "approved", "corrected", "labelled", "dismissed")
_PAGE = 200


class FeedbackClient(ServiceClient):
    service = "feedback"
    url_variable = URL_VARIABLE


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `llmops feedback` and its subcommands."""
    group = groups.add_parser(
        "feedback",
        help="review the worst answers and export fine-tuning datasets",
        description="Completions with negative feedback, a user's correction or a low online "
        "score wait in a review queue; reviewed and corrected answers are exported as JSONL "
        "for supervised fine-tuning (SFT) and preference tuning (DPO).",
    )
    common = internal_service_options("feedback", URL_VARIABLE, DEFAULT_URL)
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")

    queue = commands.add_parser(
        "queue", parents=[common], help="list queued completions, worst first"
    )
    queue.add_argument("--status", choices=STATUSES, default="pending")
    queue.add_argument("--limit", type=int, default=20, help="most entries (default 20)")
    queue.add_argument("--json", action="store_true", help="print the entries as JSON lines")
    queue.set_defaults(handler=_queue)

    review = commands.add_parser(
        "review",
        parents=[common],
        help="settle a queued completion",
        description="Approve the answer, correct it (the correction is exported for "
        "fine-tuning), label it with categories, or dismiss it. A completion is reviewed "
        "once; sending the same review again is harmless.",
    )
    review.add_argument("completion_id", metavar="COMPLETION_ID")
    action = review.add_mutually_exclusive_group(required=True)
    action.add_argument("--approve", action="store_true", help="the answer is good")
    action.add_argument("--correct", metavar="ANSWER", help="the answer that is right")
    action.add_argument("--dismiss", action="store_true", help="nothing to learn from it")
    action.add_argument(
        "--label", action="store_true", help="label only (give --category at least once)"
    )
    review.add_argument(
        "--category", action="append", default=[], help="issue category (repeatable)"
    )
    review.add_argument("--note", help="a note for other reviewers")
    review.add_argument(
        "--reviewer",
        default=os.environ.get("USER") or "cli",
        help="who reviews (default: $USER)",
    )
    review.set_defaults(handler=_review)

    export = commands.add_parser(
        "export",
        parents=[common],
        help="write SFT or preference (DPO) JSONL",
        description="sft: one line per completion, its messages ending with the corrected or "
        "approved answer. preferences: a chosen answer (corrected or liked) over the "
        "rejected one users disliked, for the same prompt. Both de-duplicated.",
    )
    export.add_argument("kind", choices=("sft", "preferences"))
    add_filter_arguments(export, model_flags=("--model",), tags=False, limit=False)
    export.add_argument(
        "--include-liked",
        action="store_true",
        help="sft: also answers users liked, unreviewed and uncorrected",
    )
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(handler=_export)


def _queue(args: argparse.Namespace) -> int:
    entries: list[dict[str, Any]] = []
    cursor = None
    with FeedbackClient.of(args) as client:
        while len(entries) < args.limit:
            params: dict[str, Any] = {"status": args.status, "limit": min(_PAGE, args.limit)}
            if cursor:
                params["cursor"] = cursor
            page = client.request("GET", "/v1/annotations", params=params)
            entries += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    entries = entries[: args.limit]
    if args.json:
        for entry in entries:
            print(json.dumps(entry))
        return 0
    if not entries:
        print(f"no {args.status} completions", file=sys.stderr)
        return 0
    for entry in entries:
        completion = entry.get("completion") or {}
        question = _last_user_message(completion.get("messages") or [])
        answer = completion.get("output") or ""
        print(
            f"{entry['completion_id']}  score {entry['priority']:.2f}  "
            f"{', '.join(entry['reasons'])}"
        )
        print(f"    Q: {_clip(question)}")
        print(f"    A: {_clip(answer)}")
    return 0


def _review(args: argparse.Namespace) -> int:
    action = (
        "approve"
        if args.approve
        else "correct"
        if args.correct is not None
        else "dismiss"
        if args.dismiss
        else "label"
    )
    body: dict[str, Any] = {"action": action, "reviewer": args.reviewer}
    if args.correct is not None:
        body["corrected_answer"] = args.correct
    if args.category:
        body["categories"] = args.category
    if args.note:
        body["note"] = args.note
    with FeedbackClient.of(args) as client:
        entry = client.request("POST", f"/v1/annotations/{args.completion_id}/review", json=body)
    print(f"{entry['completion_id']}: {entry['status']}")
    return 0


def _export(args: argparse.Namespace) -> int:
    params = selection_of(args)
    if args.include_liked:
        params["include_liked"] = "true"
    with FeedbackClient.of(args, timeout=600.0) as client:
        text = client.request_text("GET", f"/v1/exports/{args.kind}", params=params)
    write_lines(text, args.output, what="line(s)")
    return 0


def _last_user_message(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _clip(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
