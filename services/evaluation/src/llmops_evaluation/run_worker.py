"""Evaluation runs over Kafka: `eval.requests` fans out, `inference.results` comes back.

A run's request is answered by publishing one `inference.requests` event per dataset
item, with the deterministic request id `<run>/<item>`; each result is scored, stored
once and published on `eval.results` (kind `item`), and the last one completes the run
with its aggregate (kind `aggregate`). Crash safety comes from the stored results:
a redelivered run request publishes only the items that have no result yet, and a
redelivered result finds its item stored and re-publishes the same event (same id).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from llmops.bus import EventBus
from llmops.events.catalog import (
    CONTRACTS,
    CallStatus,
    EvaluationCandidate,
    EvaluationRequested,
    EvaluationScored,
    InferenceCompleted,
    InferenceRequested,
    MetricScore,
    SamplingParams,
    ScoreKind,
    Topic,
)
from llmops.events.envelope import Envelope
from llmops.keyed_locks import KeyedLocks
from llmops.telemetry import get_logger
from llmops_evaluation.candidate import (
    CandidateError,
    CandidateRequests,
    ItemInputError,
    PromptRegistryClient,
)
from llmops_evaluation.dataset_items import DatasetItem
from llmops_evaluation.datasets import DatasetNotFoundError, DatasetStore
from llmops_evaluation.runs import (
    FINAL_RUN_STATES,
    AggregateScore,
    ItemResult,
    RunNotFoundError,
    RunState,
    RunStore,
)
from llmops_evaluation.scoring import Answer, AnswerScorer
from llmops_evaluation.statistics import bootstrap_mean_ci

REQUESTS = CONTRACTS[Topic.EVAL_REQUESTS]
RESULTS = CONTRACTS[Topic.EVAL_RESULTS]
INFERENCE_REQUESTS = CONTRACTS[Topic.INFERENCE_REQUESTS]
INFERENCE_RESULTS = CONTRACTS[Topic.INFERENCE_RESULTS]
_EVENT_IDS = uuid.UUID("5c0e8f51-2f6a-4c1e-9d0b-7f3b8a1e4d22")  # namespace of score event ids
_PUBLISH_AT_ONCE = 32

_log = get_logger(__name__)


def request_id(run_id: str, item_id: str) -> str:
    return f"{run_id}/{item_id}"


def score_event_id(*parts: str) -> str:
    """The id of the one score event about `parts` (run and item, run, or completion)."""
    return str(uuid.uuid5(_EVENT_IDS, "\x00".join(parts)))


class RunWorker:
    def __init__(
        self,
        *,
        runs: RunStore,
        datasets: DatasetStore,
        bus: EventBus,
        prompts: PromptRegistryClient,
        scorer: AnswerScorer,
        http: httpx.AsyncClient,
        indexer_url: str,
        default_max_tokens: int,
    ) -> None:
        self._runs = runs
        self._datasets = datasets
        self._bus = bus
        self._prompts = prompts
        self._scorer = scorer
        self._http = http
        self._indexer_url = indexer_url
        self._default_max_tokens = default_max_tokens
        self._finishing = KeyedLocks()

    def subscribe(self) -> None:
        self._bus.subscribe(REQUESTS, self.on_run_requested)
        self._bus.subscribe(INFERENCE_RESULTS, self.on_inference_result)

    # -- fan out --------------------------------------------------------------------------

    async def on_run_requested(self, event: Envelope[EvaluationRequested]) -> None:
        request = event.data
        try:
            dataset = await self._datasets.version(
                event.tenant, request.dataset_id, request.dataset_version
            )
        except DatasetNotFoundError as exc:
            _log.warning("evaluation of a missing dataset", run_id=request.run_id, error=str(exc))
            await self._runs.create(
                request.run_id,
                event.tenant,
                dataset=request.dataset_id,
                dataset_version=request.dataset_version,
                items=0,
                candidate=request.candidate,
                metrics=list(request.metrics),
            )
            await self._runs.fail(request.run_id, str(exc))
            return
        await self._runs.create(
            request.run_id,
            event.tenant,
            dataset=dataset.name,
            dataset_version=dataset.version,
            items=dataset.items,
            candidate=request.candidate,
            metrics=list(request.metrics),
        )
        run = await self._runs.raw(request.run_id)
        if RunState(run["state"]) in FINAL_RUN_STATES:
            return
        candidate = request.candidate
        try:
            prompt = await self._prompts.resolve(
                candidate.prompt_name,
                label=candidate.prompt_label,
                version=candidate.prompt_version,
            )
        except CandidateError as exc:
            await self._runs.fail(request.run_id, str(exc))
            return
        await self._runs.start(request.run_id, prompt_version=prompt.version)
        requests = CandidateRequests(
            candidate, prompt, indexer_url=self._indexer_url, http=self._http, tenant=event.tenant
        )
        settled = await self._runs.settled_items(request.run_id)
        sampling = _sampling(prompt.spec.parameters, self._default_max_tokens)
        pending: list[DatasetItem] = []
        ordinals: dict[str, int] = {}
        ordinal = 0
        async for item in self._datasets.items(event.tenant, dataset.name, dataset.version):
            ordinals[item.item_id] = ordinal
            ordinal += 1
            if item.item_id not in settled:
                pending.append(item)
        for start in range(0, len(pending), _PUBLISH_AT_ONCE):
            batch = pending[start : start + _PUBLISH_AT_ONCE]
            await asyncio.gather(
                *(
                    self._dispatch(
                        event.tenant,
                        request.run_id,
                        candidate,
                        requests,
                        item,
                        ordinals[item.item_id],
                        sampling,
                    )
                    for item in batch
                )
            )
        _log.info(
            "evaluation run dispatched",
            run_id=request.run_id,
            items=dataset.items,
            dispatched=len(pending),
            prompt=f"{prompt.name}@{prompt.version}",
        )
        if not pending:
            await self._finish_if_done(event.tenant, request.run_id)

    async def _dispatch(
        self,
        tenant: str,
        run_id: str,
        candidate: EvaluationCandidate,
        requests: CandidateRequests,
        item: DatasetItem,
        ordinal: int,
        sampling: SamplingParams,
    ) -> None:
        try:
            built = await requests.build(item)
        except ItemInputError as exc:
            result = ItemResult(
                run_id=run_id, item_id=item.item_id, ordinal=ordinal, status="error", error=str(exc)
            )
            await self._settle(tenant, result)
            return
        await self._runs.record_dispatches(
            run_id,
            [{"item_id": item.item_id, "ordinal": ordinal, "contexts": built.contexts}],
        )
        await self._bus.emit(
            INFERENCE_REQUESTS,
            InferenceRequested(
                request_id=request_id(run_id, item.item_id),
                model=candidate.model,
                messages=built.messages,
                sampling=sampling,
                run_id=run_id,
                item_id=item.item_id,
                metadata={"prompt": f"{requests.prompt.name}@{requests.prompt.version}"},
            ),
            tenant=tenant,
            subject=request_id(run_id, item.item_id),
        )

    # -- results --------------------------------------------------------------------------

    async def on_inference_result(self, event: Envelope[InferenceCompleted]) -> None:
        result = event.data
        if result.run_id is None or result.item_id is None:
            return  # an ad-hoc batch request, not an evaluation
        try:
            run = await self._runs.raw(result.run_id)
        except RunNotFoundError:
            _log.debug("result of an unknown run", run_id=result.run_id)
            return
        if run["tenant"] != event.tenant or RunState(run["state"]) in FINAL_RUN_STATES:
            return
        dispatch = await self._runs.dispatch(result.run_id, result.item_id)
        if dispatch is None:
            return  # not an item this run asked for
        stored = await self._runs.result(result.run_id, result.item_id)
        if stored is not None:  # a redelivery: publish what was stored, score nothing again
            await self._settle(event.tenant, stored)
            return
        item = await self._datasets.item(
            event.tenant, run["dataset"], int(run["dataset_version"]), result.item_id
        )
        scored = await self._score(run, item, int(dispatch["ordinal"]), dispatch, result)
        await self._settle(event.tenant, scored)

    async def _score(
        self,
        run: dict[str, Any],
        item: DatasetItem,
        ordinal: int,
        dispatch: dict[str, Any],
        result: InferenceCompleted,
    ) -> ItemResult:
        base = ItemResult(
            run_id=run["_id"],
            item_id=item.item_id,
            ordinal=ordinal,
            status="ok",
            question=item.question(),
            contexts=list(dispatch.get("contexts", [])),
            latency_ms=result.latency_ms,
            total_tokens=result.usage.total_tokens,
        )
        if result.status is not CallStatus.OK or result.output is None:
            error = result.error.message if result.error else "the call failed"
            return base.model_copy(update={"status": "error", "error": error})
        answer = Answer(
            question=item.question(),
            answer=result.output,
            reference=item.reference,
            contexts=base.contexts,
            expected_contexts=item.contexts,
            input_text="\n".join([item.question(), *(m.content for m in item.messages)]),
        )
        scores = await self._scorer.score(list(run["metrics"]), answer)
        return base.model_copy(
            update={"output": result.output, "scores": scores.values, "notes": scores.notes}
        )

    async def _settle(self, tenant: str, result: ItemResult) -> None:
        """Store the item's result once and publish it; the stored one wins on redelivery."""
        if not await self._runs.record_result(result):
            result = await self._runs.result(result.run_id, result.item_id) or result
        await self._bus.emit(
            RESULTS,
            EvaluationScored(
                run_id=result.run_id,
                kind=ScoreKind.ITEM,
                item_id=result.item_id,
                scores=[MetricScore(metric=m, value=v) for m, v in sorted(result.scores.items())],
                details={
                    "status": result.status,
                    **({"error": result.error} if result.error else {}),
                }
                | {f"note.{metric}": note for metric, note in result.notes.items()},
            ),
            tenant=tenant,
            subject=result.run_id,
            event_id=score_event_id(result.run_id, result.item_id),
        )
        await self._finish_if_done(tenant, result.run_id)

    async def _finish_if_done(self, tenant: str, run_id: str) -> None:
        async with self._finishing.hold(run_id):
            run = await self._runs.raw(run_id)
            if RunState(run["state"]) in FINAL_RUN_STATES:
                return
            counts = await self._runs.counts(run_id, int(run["items"]))
            if counts.done < counts.items:
                return
            aggregate = aggregate_scores(await self._runs.results(run_id), run["metrics"])
            await self._runs.complete(run_id, aggregate)
        await self._bus.emit(
            RESULTS,
            EvaluationScored(
                run_id=run_id,
                kind=ScoreKind.AGGREGATE,
                scores=[
                    MetricScore(metric=s.metric, value=s.mean, ci_low=s.ci_low, ci_high=s.ci_high)
                    for s in aggregate
                ],
                details={
                    "items": str(counts.items),
                    "scored": str(counts.scored),
                    "failed": str(counts.failed),
                    "dataset": f"{run['dataset']}@{run['dataset_version']}",
                },
            ),
            tenant=tenant,
            subject=run_id,
            event_id=score_event_id(run_id),
        )
        _log.info(
            "evaluation run completed", run_id=run_id, items=counts.items, failed=counts.failed
        )


def aggregate_scores(results: Sequence[ItemResult], metrics: Sequence[str]) -> list[AggregateScore]:
    """Each metric's mean over the items that have it, with a 95% bootstrap interval."""
    aggregate = []
    for metric in metrics:
        values = [r.scores[metric] for r in results if metric in r.scores]
        if not values:
            continue
        mean, low, high = bootstrap_mean_ci(values)
        aggregate.append(
            AggregateScore(metric=metric, mean=mean, ci_low=low, ci_high=high, items=len(values))
        )
    return aggregate


def _sampling(parameters: dict[str, Any], default_max_tokens: int) -> SamplingParams:
    """The prompt's sampling parameters; greedy by default, so reruns are comparable."""
    return SamplingParams(
        temperature=float(parameters.get("temperature", 0.0)),
        top_p=float(parameters.get("top_p", 1.0)),
        max_tokens=int(parameters.get("max_tokens", default_max_tokens)),
        stop=list(parameters.get("stop", [])),
        seed=parameters.get("seed"),
    )
