"""HTTP API of drift reports: `POST /v1/drift/reports`; each report also updates the gauges."""

# No `from __future__ import annotations`: FastAPI resolves the route-local Annotated aliases.

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from llmops.service import LateBound
from llmops.tenancy import DEFAULT_TENANT, TENANT_HEADER, TENANT_PATTERN
from llmops_monitoring.drift import DEFAULT_ALPHA, PSI_MAJOR
from llmops_monitoring.drift_reports import (
    DriftAnalysis,
    DriftAnalyst,
    DriftOptions,
    DriftRequest,
    EncoderUnavailableError,
    InvalidDriftRequest,
    TimeRange,
)
from llmops_monitoring.live_metrics import LiveMetrics


@dataclass
class DriftReports:
    """What the route uses, built in the service lifespan."""

    analyst: DriftAnalyst
    live: LiveMetrics


class TimeRangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="From (ISO 8601 with a timezone), inclusive.")
    until: AwareDatetime = Field(description="Until, exclusive.")


_DEFAULTS = DriftOptions()


class DriftReportBody(BaseModel):
    """A reference window, a later current window, and what to compare in them."""

    model_config = ConfigDict(extra="forbid")

    tenant: str | None = Field(
        None,
        pattern=TENANT_PATTERN,
        description=f"Default: the {TENANT_HEADER} header, else `{DEFAULT_TENANT}`. "
        "When both are given they must agree.",
    )
    prompt: str | None = Field(None, description="`name@version`; unset: every prompt.")
    collection: str | None = Field(None, description="Retrieval collection; unset: every one.")
    reference: TimeRangeBody
    current: TimeRangeBody = Field(description="Starts at or after `reference.until`.")
    alpha: float = Field(DEFAULT_ALPHA, gt=0, lt=1, description="Significance level.")
    psi_threshold: float = Field(PSI_MAJOR, gt=0, description="PSI at which scores drifted.")
    topic_js_threshold: float = Field(
        _DEFAULTS.topic_js_threshold,
        gt=0,
        le=1,
        description="Jensen-Shannon distance of the topic mixes at which topics drifted.",
    )
    min_samples: int = Field(
        _DEFAULTS.min_samples,
        ge=5,
        le=10_000,
        description="Usable samples each window needs for a check; fewer: insufficient data.",
    )
    max_samples: int = Field(
        _DEFAULTS.max_samples, ge=5, le=50_000, description="Samples read per window at most."
    )
    embedded_samples: int = Field(
        _DEFAULTS.embedded_samples,
        ge=5,
        le=2_000,
        description="Questions embedded per window at most (a seeded random subset).",
    )
    permutations: int = Field(_DEFAULTS.permutations, ge=20, le=5_000)
    topics: int = Field(_DEFAULTS.topics, ge=2, le=32, description="Topics at most.")
    seed: int = Field(_DEFAULTS.seed, ge=0, description="Same seed, same windows: same report.")


class ReportView(BaseModel):
    name: str
    statistic: float
    p_value: float | None
    threshold: float = Field(description="Significance level, or the statistic's bound.")
    decided_by: Literal["p_value", "statistic"]
    drifted: bool
    description: str
    reference_size: int
    current_size: int
    examples: list[str] = Field(description="Quantiles, bins or topics that moved.")


class ExampleView(BaseModel):
    completion_id: str
    time: datetime
    question: str
    detail: str


class CheckView(BaseModel):
    check: str
    status: Literal["drift", "no drift", "insufficient data"]
    report: ReportView | None
    examples: list[ExampleView] = Field(description="Current completions that show the change.")
    note: str


class WindowView(BaseModel):
    since: datetime
    until: datetime
    samples: int
    truncated: bool = Field(description="More than max_samples: only the oldest were read.")


class DriftAnalysisView(BaseModel):
    tenant: str
    prompt: str | None
    collection: str | None
    scope: str = Field(description="`tenant/prompt/collection`: the gauges' scope label.")
    reference: WindowView
    current: WindowView
    embedding_model: str | None
    drifted: list[str] = Field(description="The checks that flagged drift.")
    checks: list[CheckView]


def _tenant_of(body: DriftReportBody, header: str | None) -> str:
    if body.tenant is not None and header is not None and body.tenant != header:
        raise HTTPException(
            422,
            f"the body names tenant {body.tenant!r} but the {TENANT_HEADER} header "
            f"{header!r}; send one of them",
        )
    return body.tenant or header or DEFAULT_TENANT


def _request_of(body: DriftReportBody, tenant: str) -> DriftRequest:
    try:
        return DriftRequest(
            tenant=tenant,
            prompt=body.prompt,
            collection=body.collection,
            reference=TimeRange(body.reference.since, body.reference.until),
            current=TimeRange(body.current.since, body.current.until),
            options=DriftOptions(
                alpha=body.alpha,
                psi_threshold=body.psi_threshold,
                topic_js_threshold=body.topic_js_threshold,
                min_samples=body.min_samples,
                max_samples=body.max_samples,
                embedded_samples=body.embedded_samples,
                permutations=body.permutations,
                topics=body.topics,
                seed=body.seed,
            ),
        )
    except InvalidDriftRequest as exc:
        raise HTTPException(422, str(exc)) from exc


def publish_gauges(live: LiveMetrics, analysis: DriftAnalysis) -> None:
    """Expose each check that ran as `llmops_drift_statistic` / `llmops_drift_detected`."""
    for check in analysis.checks:
        if check.report is not None:
            live.set_drift(
                analysis.scope, check.check, check.report.statistic, check.report.drifted
            )


def build_drift_router(drift: LateBound[DriftReports]) -> APIRouter:
    router = APIRouter(prefix="/v1/drift", tags=["drift"])
    Drift = Annotated[DriftReports, Depends(drift.get)]

    @router.post(
        "/reports",
        summary="Drift of a current window against a reference window",
        response_model=DriftAnalysisView,
    )
    async def report(
        body: DriftReportBody,
        reports: Drift,
        header_tenant: Annotated[
            str | None,
            Header(
                alias=TENANT_HEADER,
                pattern=TENANT_PATTERN,
                description="Tenant the request acts for; the body's `tenant` must agree.",
            ),
        ] = None,
    ) -> DriftAnalysisView:
        request = _request_of(body, _tenant_of(body, header_tenant))
        try:
            analysis = await reports.analyst.report(request)
        except EncoderUnavailableError as exc:
            raise HTTPException(503, str(exc)) from exc
        publish_gauges(reports.live, analysis)
        return DriftAnalysisView.model_validate(analysis.to_dict())

    return router


__all__ = ["DriftReportBody", "DriftReports", "build_drift_router", "publish_gauges"]
