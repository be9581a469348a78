"""`llmops eval`: datasets, evaluation runs, comparisons, the CI gate and replays.

Talks to the evaluation service (`$LLMOPS_EVALUATION_URL`), for the tenant in
`$LLMOPS_TENANT`. `gate` is the release step: it evaluates the baseline and the
candidate on one dataset version, prints a comparison, and exits 1 when the candidate
is worse than the baseline by more than `--max-regression` on the metric.

Exit status: 0 success (the gate passed), 1 the gate failed or a run failed, 2 usage
or service errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from llmops.cli.client import (
    CliError,
    ServiceClient,
    internal_service_options,
    write_lines,
)
from llmops.cli.completion_filters import add_filter_arguments, selection_of

URL_VARIABLE = "LLMOPS_EVALUATION_URL"
DEFAULT_URL = "http://127.0.0.1:8005"
_CANDIDATE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._-]*?)(?:@(?P<label>[a-z0-9][a-z0-9._-]*)|:v?(?P<version>\d+))?$"
)
_FINAL = {"completed", "failed"}


class EvaluationClient(ServiceClient):
    service = "evaluation"
    url_variable = URL_VARIABLE


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `llmops eval` and its subcommands."""
    group = groups.add_parser(
        "eval",
        help="datasets, evaluation runs, comparisons, the CI gate and replays",
        description="Evaluate prompts and models on versioned datasets. A candidate is "
        "PROMPT@LABEL (e.g. support@staging) or PROMPT:VERSION, answered by --model.",
    )
    common = internal_service_options("evaluation", URL_VARIABLE, DEFAULT_URL)
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upload = commands.add_parser(
        "upload",
        parents=[common],
        help="add a dataset version from a JSONL or CSV file",
        description="Each JSONL line is an item: item_id, input (a question, or a list of "
        "chat messages), messages, variables, reference, contexts, metadata. CSV columns: "
        "item_id, input, reference, contexts (JSON array), metadata.KEY; other columns are "
        "prompt variables. A bad line refuses the whole file, with line numbers.",
    )
    upload.add_argument("dataset", metavar="NAME")
    upload.add_argument("file", type=Path, metavar="FILE")
    upload.add_argument("--description", default="")
    upload.set_defaults(handler=_upload)

    export = commands.add_parser(
        "export", parents=[common], help="print a dataset version as JSONL"
    )
    export.add_argument("dataset", metavar="NAME[@VERSION]")
    export.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    export.set_defaults(handler=_export)

    select = commands.add_parser(
        "from-completions",
        parents=[common],
        help="add a dataset version made of stored production completions",
        description="Select completions the platform served (time range, prompt version, "
        "model, tags); production's answers become the references.",
    )
    select.add_argument("dataset", metavar="NAME")
    add_filter_arguments(select, model_flags=("--served-model", "--model"))
    select.set_defaults(handler=_from_completions)

    from_feedback = commands.add_parser(
        "from-feedback",
        parents=[common],
        help="add a dataset version made of answers people corrected or approved",
        description="Select what the feedback service exports for fine-tuning (time range of "
        "the completions, prompt version, model): the reviewer's correction, the answer a "
        "reviewer approved or the user's correction becomes the reference.",
    )
    from_feedback.add_argument("dataset", metavar="NAME")
    add_filter_arguments(from_feedback, model_flags=("--served-model", "--model"), tags=False)
    from_feedback.add_argument(
        "--include-liked",
        action="store_true",
        help="also answers users liked that no reviewer approved",
    )
    from_feedback.add_argument("--description", default="")
    from_feedback.set_defaults(handler=_from_feedback)

    run = commands.add_parser(
        "run", parents=[common], help="evaluate a candidate on a dataset (progress bar)"
    )
    run.add_argument("--dataset", required=True, metavar="NAME[@VERSION]")
    _add_candidate_arguments(run, "candidate")
    run.add_argument("--no-wait", action="store_true", help="print the run id and return")
    run.add_argument("--json", action="store_true", help="print the finished run as JSON")
    run.set_defaults(handler=_run)

    compare = commands.add_parser("compare", parents=[common], help="compare two finished runs")
    compare.add_argument("baseline", metavar="BASELINE_RUN")
    compare.add_argument("candidate", metavar="CANDIDATE_RUN")
    compare.add_argument("--metric", action="append", default=[], help="metric (repeatable)")
    compare.add_argument("--pairwise", action="store_true", help="ask the LLM judge too")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(handler=_compare)

    gate = commands.add_parser(
        "gate",
        parents=[common],
        help="fail (exit 1) when the candidate regresses",
        description="Run baseline and candidate on the same dataset version, compare them on "
        "--metric and exit 1 when the candidate is worse by more than --max-regression (in "
        "the metric's own units, e.g. 0.01 ROUGE-L).",
    )
    gate.add_argument("--dataset", required=True, metavar="NAME[@VERSION]")
    gate.add_argument("--baseline", required=True, metavar="PROMPT@LABEL|PROMPT:VERSION")
    gate.add_argument("--candidate", required=True, metavar="PROMPT@LABEL|PROMPT:VERSION")
    gate.add_argument("--model", help="model of both (default: each prompt's own model)")
    gate.add_argument("--baseline-model", help="model of the baseline (default: --model)")
    gate.add_argument("--metric", required=True, action="append", help="metric (repeatable)")
    gate.add_argument("--max-regression", type=float, required=True, metavar="DELTA")
    gate.add_argument("--rag-collection", help="retrieve context from this collection")
    gate.add_argument("--top-k", type=int, help="passages to retrieve")
    gate.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for runs")
    gate.add_argument("--json", action="store_true", help="print the comparison as JSON")
    gate.set_defaults(handler=_gate)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="re-run past production requests against a candidate (shadow evaluation)",
        description="Past completions (time range, prompt version, model, tags) are answered "
        "by the candidate and scored against what production answered.",
    )
    add_filter_arguments(replay)
    _add_candidate_arguments(
        replay,
        "candidate",
        metrics_default="token_f1, rougeL and embedding_similarity against production's answers",
    )
    replay.add_argument("--no-wait", action="store_true")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=_replay)
    group.set_defaults(error_status=2)


def _add_candidate_arguments(
    parser: argparse.ArgumentParser, flag: str, *, metrics_default: str = "the service's defaults"
) -> None:
    parser.add_argument(f"--{flag}", required=True, metavar="PROMPT@LABEL|PROMPT:VERSION")
    parser.add_argument("--model", help="model to answer with (default: the prompt's model)")
    parser.add_argument("--rag-collection", help="retrieve context from this collection")
    parser.add_argument("--top-k", type=int, help="passages to retrieve")
    parser.add_argument(
        "--metric",
        action="append",
        default=[],
        help=f"metric (repeatable; default: {metrics_default})",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait")


def _client(args: argparse.Namespace, timeout: float = 60.0) -> EvaluationClient:
    return EvaluationClient.of(args, timeout=timeout)


# -- datasets -------------------------------------------------------------------------------


def _upload(args: argparse.Namespace) -> int:
    try:
        content = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from exc
    with _client(args, timeout=300.0) as client:
        version = client.request(
            "POST",
            f"/v1/datasets/{args.dataset}/versions",
            data={"description": args.description},
            files=[("file", (args.file.name, content, "application/octet-stream"))],
        )
    print(f"{version['name']}@{version['version']}: {version['items']} item(s)")
    return 0


def _export(args: argparse.Namespace) -> int:
    name, version = _dataset_ref(args.dataset)
    params = {"version": version} if version else {}
    with _client(args, timeout=300.0) as client:
        text = client.request_text("GET", f"/v1/datasets/{name}/export", params=params)
    write_lines(text, args.output, what="item(s)")
    return 0


def _from_completions(args: argparse.Namespace) -> int:
    with _client(args, timeout=300.0) as client:
        version = client.request(
            "POST",
            f"/v1/datasets/{args.dataset}/versions/from-completions",
            json={"filter": selection_of(args)},
        )
    print(f"{version['name']}@{version['version']}: {version['items']} item(s)")
    return 0


def _from_feedback(args: argparse.Namespace) -> int:
    selection = selection_of(args) | {"include_liked": args.include_liked}
    with _client(args, timeout=300.0) as client:
        version = client.request(
            "POST",
            f"/v1/datasets/{args.dataset}/versions/from-feedback",
            json={"filter": selection, "description": args.description},
        )
    print(f"{version['name']}@{version['version']}: {version['items']} item(s)")
    return 0


# -- runs -----------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    name, version = _dataset_ref(args.dataset)
    with _client(args) as client:
        run = _start(
            client, name, version, _candidate(args.candidate, args.model, args), args.metric
        )
        return _finish(client, run, args)


def _compare(args: argparse.Namespace) -> int:
    with _client(args, timeout=600.0) as client:
        comparison = client.request(
            "GET",
            "/v1/comparisons",
            params={
                "baseline": args.baseline,
                "candidate": args.candidate,
                "metric": args.metric,
                "pairwise": args.pairwise,
            },
        )
    if args.json:
        print(json.dumps(comparison, indent=2))
    else:
        _print_comparison(comparison)
    return 0


def _gate(args: argparse.Namespace) -> int:
    name, version = _dataset_ref(args.dataset)
    with _client(args) as client:
        if version is None:
            version = int(client.request("GET", f"/v1/datasets/{name}")["latest_version"])
        baseline = _candidate(args.baseline, args.baseline_model or args.model, args)
        candidate = _candidate(args.candidate, args.model, args)
        runs = [
            _start(client, name, version, baseline, args.metric),
            _start(client, name, version, candidate, args.metric),
        ]
        print(
            f"baseline {args.baseline}: run {runs[0]['run_id']}; candidate {args.candidate}: "
            f"run {runs[1]['run_id']}; dataset {name}@{version}",
            file=sys.stderr,
        )
        finished = _follow(client, [run["run_id"] for run in runs], args.timeout)
        failed = [run for run in finished if run["state"] != "completed"]
        if failed:
            raise CliError("; ".join(f"run {r['run_id']} failed: {r.get('error')}" for r in failed))
        comparison = client.request(
            "GET",
            "/v1/comparisons",
            params={
                "baseline": runs[0]["run_id"],
                "candidate": runs[1]["run_id"],
                "metric": args.metric,
            },
        )
    regressions = [m for m in comparison["metrics"] if m["worse_by"] > args.max_regression]
    if args.json:
        print(
            json.dumps(
                comparison | {"max_regression": args.max_regression, "passed": not regressions},
                indent=2,
            )
        )
    else:
        _print_comparison(comparison)
        print()
        for metric in comparison["metrics"]:
            verdict = "REGRESSION" if metric in regressions else "ok"
            print(
                f"{verdict:>10}  {metric['metric']}: candidate worse by {metric['worse_by']:+.4f} "
                f"(allowed {args.max_regression:.4f})"
            )
        print(
            f"\ngate {'FAILED' if regressions else 'passed'}: {args.candidate} vs {args.baseline}"
        )
    return 1 if regressions else 0


def _replay(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "filter": selection_of(args),
        "candidate": _candidate(args.candidate, args.model, args),
    }
    if args.metric:
        body["metrics"] = args.metric
    with _client(args, timeout=300.0) as client:
        replay = client.request("POST", "/v1/replays", json=body)
        dataset, run = replay["dataset"], replay["run"]
        print(
            f"replaying {dataset['items']} completion(s) as {dataset['name']}@"
            f"{dataset['version']}: run {run['run_id']}",
            file=sys.stderr,
        )
        return _finish(client, run, args, note="scores compare the answers with production's")


def _finish(
    client: EvaluationClient, run: dict[str, Any], args: argparse.Namespace, *, note: str = ""
) -> int:
    """Print the run id (--no-wait), or follow the run and print its result."""
    if args.no_wait:
        print(run["run_id"])
        return 0
    run = _follow(client, [run["run_id"]], args.timeout)[0]
    if args.json:
        print(json.dumps(run, indent=2))
    else:
        _print_run(run)
        if note:
            print(f"({note})")
    return 0 if run["state"] == "completed" else 1


def _start(
    client: EvaluationClient,
    dataset: str,
    version: int | None,
    candidate: dict[str, Any],
    metrics: list[str],
) -> dict[str, Any]:
    body = {
        "dataset": dataset,
        "dataset_version": version,
        "candidate": candidate,
        "metrics": metrics,
        "requested_by": os.environ.get("USER", "cli"),
    }
    run: dict[str, Any] = client.request("POST", "/v1/runs", json=body)
    return run


def _follow(client: EvaluationClient, run_ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """Poll the runs with a progress bar over all their items until every one finished."""
    deadline = time.monotonic() + timeout
    runs = [client.request("GET", f"/v1/runs/{run_id}") for run_id in run_ids]
    total = sum(run["counts"]["items"] for run in runs)
    with tqdm(total=total, unit="item", desc="evaluating", file=sys.stderr) as bar:
        while True:
            done = sum(run["counts"]["scored"] + run["counts"]["failed"] for run in runs)
            bar.update(done - bar.n)
            bar.set_postfix(failed=sum(run["counts"]["failed"] for run in runs))
            if all(run["state"] in _FINAL for run in runs):
                return runs
            if time.monotonic() > deadline:
                raise CliError(f"runs {', '.join(run_ids)} did not finish within {timeout:.0f}s")
            time.sleep(0.5)
            runs = [client.request("GET", f"/v1/runs/{run_id}") for run_id in run_ids]


# -- parsing and printing -------------------------------------------------------------------


def _candidate(ref: str, model: str | None, args: argparse.Namespace) -> dict[str, Any]:
    match = _CANDIDATE.match(ref)
    if match is None:
        raise CliError(f"not a candidate: {ref!r} (expected PROMPT@LABEL or PROMPT:VERSION)")
    if not model:
        raise CliError(f"which model answers {ref}? pass --model")
    return {
        "prompt_name": match["name"],
        "prompt_label": match["label"] if match["version"] is None else None,
        "prompt_version": int(match["version"]) if match["version"] else None,
        "model": model,
        "rag_collection": getattr(args, "rag_collection", None),
        "rag_top_k": getattr(args, "top_k", None),
    }


def _dataset_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.partition("@")
    if version and not version.removeprefix("v").isdigit():
        raise CliError(f"not a dataset version: {ref!r} (expected NAME or NAME@VERSION)")
    return name, int(version.removeprefix("v")) if version else None


def _print_run(run: dict[str, Any]) -> None:
    counts = run["counts"]
    candidate = run["candidate"]
    prompt = f"{candidate['prompt_name']}@{run.get('prompt_version') or '?'}"
    print(
        f"run {run['run_id']} {run['state']}: {run['dataset']}@{run['dataset_version']}, "
        f"{prompt} on {candidate['model']}; {counts['scored']} scored, {counts['failed']} failed"
    )
    if run.get("error"):
        print(f"  error: {run['error']}")
    for score in run.get("aggregate", []):
        print(
            f"  {score['metric']:<22} {score['mean']:.4f}  95% CI [{score['ci_low']:.4f}, "
            f"{score['ci_high']:.4f}]  n={score['items']}"
        )


def _print_comparison(comparison: dict[str, Any]) -> None:
    base, cand = comparison["baseline"], comparison["candidate"]
    print(
        f"baseline  {base['run_id']}: {base['candidate']['prompt_name']}@"
        f"{base.get('prompt_version')} on {base['candidate']['model']}"
    )
    print(
        f"candidate {cand['run_id']}: {cand['candidate']['prompt_name']}@"
        f"{cand.get('prompt_version')} on {cand['candidate']['model']}"
    )
    print(f"{'metric':<22} {'baseline':>9} {'candidate':>9} {'delta':>8}  {'95% CI':<19} W/T/L")
    for m in comparison["metrics"]:
        print(
            f"{m['metric']:<22} {m['baseline_mean']:9.4f} {m['candidate_mean']:9.4f} "
            f"{m['delta']:+8.4f}  [{m['ci_low']:+.4f}, {m['ci_high']:+.4f}] "
            f"{m['wins']}/{m['ties']}/{m['losses']}"
        )
        for change in m["top_changes"]:
            print(f"    {change['item_id']}: {change['baseline']:.3f} -> {change['candidate']:.3f}")
    if comparison.get("only_in_one_run"):
        print(f"({comparison['only_in_one_run']} item(s) scored in one run only were left out)")
    pairwise = comparison.get("pairwise")
    if pairwise:
        print(
            f"judge {pairwise['judge_model']}: candidate preferred "
            f"{pairwise['candidate_preferred']}, baseline {pairwise['baseline_preferred']}, "
            f"ties {pairwise['ties']}, failed {pairwise['failed']}"
        )
