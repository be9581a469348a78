"""Two runs side by side: per metric, the paired delta with its interval and the items
that moved most; optionally the judge's pairwise preference.

Runs are paired by item id, so they must come from the same dataset; items only one
run scored are left out and counted. The CI gate (`llmops eval gate`) reads `worse_by`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydantic import BaseModel, Field

from llmops_evaluation.judge import JudgeError, LlmJudge
from llmops_evaluation.runs import FINAL_RUN_STATES, ItemResult, RunState, RunStore, RunView
from llmops_evaluation.scoring import METRICS
from llmops_evaluation.statistics import compare_paired

_PAIRWISE_AT_ONCE = 4


class ComparisonError(ValueError):
    """The runs cannot be compared (not finished, other datasets, no common items)."""


class ItemChange(BaseModel):
    item_id: str
    baseline: float
    candidate: float
    delta: float


class MetricComparison(BaseModel):
    metric: str
    higher_is_better: bool
    items: int = Field(description="Items both runs have a value for.")
    baseline_mean: float
    candidate_mean: float
    delta: float = Field(description="candidate minus baseline.")
    ci_low: float = Field(description="95% bootstrap interval of the paired delta.")
    ci_high: float
    wins: int
    ties: int
    losses: int
    worse_by: float = Field(description="How much worse the candidate is (negative: better).")
    top_changes: list[ItemChange]


class PairwisePreference(BaseModel):
    judge_model: str
    candidate_preferred: int
    baseline_preferred: int
    ties: int
    failed: int


class RunComparison(BaseModel):
    baseline: RunView
    candidate: RunView
    metrics: list[MetricComparison]
    only_in_one_run: int = Field(description="Items scored by one run and not the other.")
    pairwise: PairwisePreference | None = None


async def compare_runs(
    runs: RunStore,
    tenant: str,
    baseline_id: str,
    candidate_id: str,
    *,
    metrics: Sequence[str] = (),
    judge: LlmJudge | None = None,
    top: int = 5,
) -> RunComparison:
    baseline, candidate = (
        await runs.view(baseline_id, tenant),
        await runs.view(candidate_id, tenant),
    )
    for run in (baseline, candidate):
        if run.state not in FINAL_RUN_STATES:
            raise ComparisonError(f"run {run.run_id} is {run.state.value}; wait until it completes")
        if run.state is RunState.FAILED:
            raise ComparisonError(f"run {run.run_id} failed: {run.error}")
    if baseline.dataset != candidate.dataset:
        raise ComparisonError(
            f"the runs evaluated different datasets ({baseline.dataset}, {candidate.dataset})"
        )
    base_items = {r.item_id: r for r in await runs.results(baseline_id)}
    cand_items = {r.item_id: r for r in await runs.results(candidate_id)}
    chosen = list(metrics) or [m for m in baseline.metrics if m in candidate.metrics]
    comparisons = []
    for metric in chosen:
        if metric not in METRICS:
            raise ComparisonError(f"unknown metric {metric!r}")
        base_values = {i: r.scores[metric] for i, r in base_items.items() if metric in r.scores}
        cand_values = {i: r.scores[metric] for i, r in cand_items.items() if metric in r.scores}
        if not base_values.keys() & cand_values.keys():
            raise ComparisonError(f"no item has a {metric} value in both runs")
        higher = METRICS[metric].higher_is_better
        paired = compare_paired(base_values, cand_values, higher_is_better=higher, top=top)
        comparisons.append(
            MetricComparison(
                metric=metric,
                higher_is_better=higher,
                items=paired.items,
                baseline_mean=paired.baseline_mean,
                candidate_mean=paired.candidate_mean,
                delta=paired.delta,
                ci_low=paired.ci_low,
                ci_high=paired.ci_high,
                wins=paired.wins,
                ties=paired.ties,
                losses=paired.losses,
                worse_by=paired.worse_by,
                top_changes=[
                    ItemChange(
                        item_id=c.item_id, baseline=c.baseline, candidate=c.candidate, delta=c.delta
                    )
                    for c in paired.top_changes
                ],
            )
        )
    pairwise = None
    if judge is not None:
        pairwise = await _pairwise(judge, base_items, cand_items)
    return RunComparison(
        baseline=baseline,
        candidate=candidate,
        metrics=comparisons,
        only_in_one_run=len(base_items.keys() ^ cand_items.keys()),
        pairwise=pairwise,
    )


async def _pairwise(
    judge: LlmJudge, baseline: dict[str, ItemResult], candidate: dict[str, ItemResult]
) -> PairwisePreference:
    """The judge's preference per common item; the answers' order alternates with the item
    so a judge that favours position A does not favour one run."""
    common = sorted(
        i for i in baseline.keys() & candidate.keys() if baseline[i].output and candidate[i].output
    )
    tally = {"candidate": 0, "baseline": 0, "tie": 0, "failed": 0}
    gate = asyncio.Semaphore(_PAIRWISE_AT_ONCE)

    async def judge_item(position: int, item_id: str) -> None:
        base, cand = baseline[item_id].output or "", candidate[item_id].output or ""
        question = baseline[item_id].question
        swapped = position % 2 == 1
        first, second = (cand, base) if swapped else (base, cand)
        async with gate:
            try:
                preferred, _ = await judge.pairwise(question, "", first, second)
            except JudgeError:
                tally["failed"] += 1
                return
        if preferred == "tie":
            tally["tie"] += 1
        elif (preferred == "A") != swapped:
            tally["baseline"] += 1
        else:
            tally["candidate"] += 1

    await asyncio.gather(*(judge_item(n, i) for n, i in enumerate(common)))
    return PairwisePreference(
        judge_model=judge.model,
        candidate_preferred=tally["candidate"],
        baseline_preferred=tally["baseline"],
        ties=tally["tie"],
        failed=tally["failed"],
    )
