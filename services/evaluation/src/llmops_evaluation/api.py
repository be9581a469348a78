"""HTTP API of evaluation (`/v1`): datasets, runs, comparisons and replays."""

# No `from __future__ import annotations`: FastAPI resolves the route-local Annotated aliases.

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, model_validator

from llmops.bus import EventBus
from llmops.events.catalog import CONTRACTS, EvaluationCandidate, EvaluationRequested, Topic
from llmops.service import LateBound
from llmops.tenancy import DEFAULT_TENANT, TenantId
from llmops_evaluation.comparison import ComparisonError, RunComparison, compare_runs
from llmops_evaluation.completion_log import CompletionFilter, CompletionLog
from llmops_evaluation.dataset_items import (
    DatasetItem,
    InvalidDatasetFileError,
    items_to_jsonl,
    parse_items,
)
from llmops_evaluation.datasets import (
    DATASET_NAME_PATTERN,
    DatasetNotFoundError,
    DatasetStore,
    DatasetSummary,
    DatasetVersion,
)
from llmops_evaluation.feedback_answers import FeedbackAnswers, FeedbackExportError, FeedbackFilter
from llmops_evaluation.judge import LlmJudge
from llmops_evaluation.metrics import MetricSpec, UnknownMetricError
from llmops_evaluation.runs import ItemResult, RunNotFoundError, RunStore, RunView
from llmops_evaluation.scoring import METRICS, check_metrics

MAX_UPLOAD_BYTES = 64 * 2**20
REPLAY_METRICS = ("token_f1", "rougeL", "embedding_similarity")

DatasetName = Annotated[str, Path(pattern=DATASET_NAME_PATTERN, description="Dataset name.")]


@dataclass
class Evaluation:
    """What the routes use; built in the service's lifespan."""

    datasets: DatasetStore
    runs: RunStore
    completions: CompletionLog
    feedback: FeedbackAnswers
    bus: EventBus
    judge: LlmJudge | None


class Candidate(EvaluationCandidate):
    @model_validator(mode="after")
    def _one_prompt_selector(self) -> "Candidate":
        if self.prompt_label is not None and self.prompt_version is not None:
            raise ValueError("set prompt_label or prompt_version, not both")
        return self


class RunRequest(BaseModel):
    dataset: str = Field(pattern=DATASET_NAME_PATTERN)
    dataset_version: int | None = Field(None, ge=1, description="Default: the latest.")
    candidate: Candidate
    metrics: list[str] = Field(
        default_factory=list, description="Metric names; empty: the defaults."
    )
    requested_by: str = Field("api", max_length=200)


class FromCompletions(BaseModel):
    filter: CompletionFilter = Field(default_factory=CompletionFilter)
    description: str = Field("", max_length=2000)


class FromFeedback(BaseModel):
    filter: FeedbackFilter = Field(default_factory=FeedbackFilter)
    description: str = Field("", max_length=2000)


class ReplayRequest(BaseModel):
    """Re-run past production requests against a candidate, scored against what
    production answered."""

    filter: CompletionFilter
    candidate: Candidate
    metrics: list[str] = Field(default_factory=lambda: list(REPLAY_METRICS))
    requested_by: str = Field("api", max_length=200)


class Replay(BaseModel):
    dataset: DatasetVersion
    run: RunView


def build_router(evaluation: LateBound[Evaluation]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["evaluation"])
    Eval = Annotated[Evaluation, Depends(evaluation.get)]

    # -- datasets -------------------------------------------------------------------------

    @router.post("/datasets/{name}/versions", status_code=status.HTTP_201_CREATED)
    async def upload_dataset(
        name: DatasetName,
        file: Annotated[UploadFile, File(description="Items as JSONL or CSV (by file name).")],
        ev: Eval,
        tenant: TenantId = DEFAULT_TENANT,
        description: Annotated[str, Form(max_length=2000)] = "",
    ) -> DatasetVersion:
        """Add a version of the dataset from a JSONL or CSV file; a bad line refuses the file."""
        content = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(content) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"the file is larger than {MAX_UPLOAD_BYTES} bytes")
        try:
            items = parse_items(content, filename=file.filename or "items.jsonl")
        except InvalidDatasetFileError as exc:
            detail = {"message": str(exc), "problems": [p.model_dump() for p in exc.problems]}
            raise HTTPException(422, detail) from exc
        return await ev.datasets.add_version(
            tenant,
            name,
            items,
            source="upload",
            description=description,
            origin={"file": file.filename or ""},
        )

    @router.post("/datasets/{name}/versions/from-completions", status_code=status.HTTP_201_CREATED)
    async def dataset_from_completions(
        name: DatasetName, body: FromCompletions, ev: Eval, tenant: TenantId = DEFAULT_TENANT
    ) -> DatasetVersion:
        """Add a version made of stored production completions (production's answer becomes
        the reference; correct it by uploading an edited export)."""
        items = await _selected_items(ev, tenant, body.filter)
        return await ev.datasets.add_version(
            tenant,
            name,
            items,
            source="completions",
            description=body.description,
            origin=body.filter.describe(),
        )

    @router.post("/datasets/{name}/versions/from-feedback", status_code=status.HTTP_201_CREATED)
    async def dataset_from_feedback(
        name: DatasetName, body: FromFeedback, ev: Eval, tenant: TenantId = DEFAULT_TENANT
    ) -> DatasetVersion:
        """Add a version made of the answers people corrected or approved (the feedback
        service's SFT export): the corrected answer becomes the reference. 502 when the
        feedback service cannot be read."""
        try:
            items = await ev.feedback.items(tenant, body.filter)
        except FeedbackExportError as exc:
            raise HTTPException(502, str(exc)) from exc
        if not items:
            raise HTTPException(
                422, "no corrected or approved answer in the feedback service matches the filter"
            )
        return await ev.datasets.add_version(
            tenant,
            name,
            items,
            source="feedback",
            description=body.description,
            origin=body.filter.describe(),
        )

    @router.get("/datasets")
    async def list_datasets(ev: Eval, tenant: TenantId = DEFAULT_TENANT) -> list[str]:
        return await ev.datasets.names(tenant)

    @router.get("/datasets/{name}")
    async def get_dataset(
        name: DatasetName, ev: Eval, tenant: TenantId = DEFAULT_TENANT
    ) -> DatasetSummary:
        try:
            return await ev.datasets.summary(tenant, name)
        except DatasetNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc

    @router.get("/datasets/{name}/export", response_class=StreamingResponse)
    async def export_dataset(
        name: DatasetName,
        ev: Eval,
        tenant: TenantId = DEFAULT_TENANT,
        version: Annotated[int | None, Query(ge=1, description="Default: the latest.")] = None,
    ) -> StreamingResponse:
        """The version's items as JSONL, in the upload format."""
        try:
            found = await ev.datasets.version(tenant, name, version)
        except DatasetNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc

        async def lines() -> AsyncIterator[str]:
            async for item in ev.datasets.items(tenant, name, found.version):
                for line in items_to_jsonl([item]):
                    yield line

        filename = f"{name}-v{found.version}.jsonl"
        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    # -- runs -----------------------------------------------------------------------------

    @router.get("/metrics")
    async def list_metrics() -> list[MetricSpec]:
        """Every metric a run can ask for."""
        return list(METRICS.values())

    @router.post("/runs", status_code=status.HTTP_202_ACCEPTED)
    async def start_run(body: RunRequest, ev: Eval, tenant: TenantId = DEFAULT_TENANT) -> RunView:
        """Evaluate a candidate on a dataset version; follow the returned run."""
        return await _start_run(ev, tenant, body)

    @router.get("/runs")
    async def list_runs(
        ev: Eval,
        tenant: TenantId = DEFAULT_TENANT,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> list[RunView]:
        return await ev.runs.recent(tenant, limit=limit)

    @router.get("/runs/{run_id}")
    async def get_run(run_id: str, ev: Eval, tenant: TenantId = DEFAULT_TENANT) -> RunView:
        try:
            return await ev.runs.view(run_id, tenant)
        except RunNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc

    @router.get("/runs/{run_id}/items")
    async def get_run_items(
        run_id: str, ev: Eval, tenant: TenantId = DEFAULT_TENANT
    ) -> list[ItemResult]:
        try:
            await ev.runs.view(run_id, tenant)
        except RunNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        return await ev.runs.results(run_id)

    @router.get("/comparisons")
    async def compare(
        baseline: str,
        candidate: str,
        ev: Eval,
        tenant: TenantId = DEFAULT_TENANT,
        metric: Annotated[list[str], Query(description="Metrics; default: both runs' own.")] = [],  # noqa: B006 (FastAPI copies query defaults)
        pairwise: Annotated[
            bool, Query(description="Ask the judge which answer is better.")
        ] = False,
        top: Annotated[int, Query(ge=0, le=100)] = 5,
    ) -> RunComparison:
        """Two completed runs of one dataset, metric by metric."""
        if pairwise and ev.judge is None:
            raise HTTPException(
                400, "pairwise preference needs an LLM judge: set EVALUATION_JUDGE_MODEL"
            )
        try:
            return await compare_runs(
                ev.runs,
                tenant,
                baseline,
                candidate,
                metrics=metric,
                judge=ev.judge if pairwise else None,
                top=top,
            )
        except RunNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except ComparisonError as exc:
            raise HTTPException(409, str(exc)) from exc

    @router.post("/replays", status_code=status.HTTP_202_ACCEPTED)
    async def replay(body: ReplayRequest, ev: Eval, tenant: TenantId = DEFAULT_TENANT) -> Replay:
        """Shadow evaluation: past production requests answered by a candidate, scored
        against production's answers, before any user sees the candidate."""
        items = await _selected_items(ev, tenant, body.filter)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        name = f"replay-{stamp}-{uuid.uuid4().hex[:6]}"
        dataset = await ev.datasets.add_version(
            tenant,
            name,
            items,
            source="replay",
            origin=body.filter.describe(),
            description=f"production completions replayed against {body.candidate.prompt_name}",
        )
        run = await _start_run(
            ev,
            tenant,
            RunRequest(
                dataset=name,
                dataset_version=dataset.version,
                candidate=body.candidate,
                metrics=body.metrics,
                requested_by=body.requested_by,
            ),
        )
        return Replay(dataset=dataset, run=run)

    return router


async def _selected_items(
    ev: Evaluation, tenant: str, selection: CompletionFilter
) -> list[DatasetItem]:
    """The stored completions the filter selects, as dataset items; 422 when none match."""
    items = [c.as_item() async for c in ev.completions.select(tenant, selection)]
    if not items:
        raise HTTPException(422, "no stored completion matches the filter")
    return items


async def _start_run(ev: Evaluation, tenant: str, body: RunRequest) -> RunView:
    try:
        metrics = check_metrics(body.metrics, judge=ev.judge is not None)
        dataset = await ev.datasets.version(tenant, body.dataset, body.dataset_version)
    except UnknownMetricError as exc:
        raise HTTPException(422, str(exc)) from exc
    except DatasetNotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    candidate = EvaluationCandidate.model_validate(body.candidate.model_dump())
    await ev.runs.create(
        run_id,
        tenant,
        dataset=dataset.name,
        dataset_version=dataset.version,
        items=dataset.items,
        candidate=candidate,
        metrics=metrics,
    )
    await ev.bus.emit(
        CONTRACTS[Topic.EVAL_REQUESTS],
        EvaluationRequested(
            run_id=run_id,
            dataset_id=dataset.name,
            dataset_version=dataset.version,
            candidate=candidate,
            metrics=metrics,
            requested_by=body.requested_by,
        ),
        tenant=tenant,
        subject=run_id,
    )
    return await ev.runs.view(run_id, tenant)
