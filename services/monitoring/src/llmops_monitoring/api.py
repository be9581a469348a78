"""The query API dashboards read: time series and top-N over the stored rollups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from llmops.service import LateBound
from llmops_monitoring.alert_runner import AlertRunner
from llmops_monitoring.rollup_store import CellQuery, RollupStore
from llmops_monitoring.rollups import DIMENSION_NAMES, Aggregate, RollupCell, Window

MAX_POINTS = 10_000
DEFAULT_SPAN = 60
"""Without `since`, a query covers this many windows before `until`."""


def metric_names() -> list[str]:
    """Every rollup metric by name; `score:<metric>` reads an online evaluation metric."""
    return [*Aggregate().summary(), "score:<metric>"]


@dataclass
class Monitoring:
    """What the routes need, built in the service lifespan."""

    store: RollupStore
    alerts: AlertRunner | None = None


class SeriesPoint(BaseModel):
    time: datetime = Field(description="Window start (UTC).")
    value: float | None = Field(description="Metric value; null when the window has no data.")


class Series(BaseModel):
    labels: dict[str, str]
    points: list[SeriesPoint]


class SeriesAnswer(BaseModel):
    metric: str
    window: Window
    since: datetime
    until: datetime
    series: list[Series]


class Ranked(BaseModel):
    labels: dict[str, str]
    value: float


class TopAnswer(BaseModel):
    metric: str
    window: Window
    since: datetime
    until: datetime
    by: list[str]
    top: list[Ranked]


@dataclass(frozen=True)
class Selection:
    """A query's metric, window, time range and dimension filters, validated."""

    metric: str
    window: Window
    since: datetime
    until: datetime
    equals: tuple[tuple[str, str], ...]

    def cell_query(self) -> CellQuery:
        return CellQuery(self.window, self.since, self.until, self.equals)


def selection(
    metric: Annotated[str, Query(description="Rollup metric, see GET /v1/metrics/names.")],
    window: Annotated[Window, Query(description="Rollup window.")] = Window.MINUTE,
    since: Annotated[datetime | None, Query(description="From (ISO 8601, UTC).")] = None,
    until: Annotated[datetime | None, Query(description="Until, exclusive; default now.")] = None,
    tenant: str | None = None,
    model: str | None = None,
    prompt: Annotated[str | None, Query(description="`name@version`, `-`: none.")] = None,
    api_key_id: str | None = None,
) -> Selection:
    """FastAPI dependency: the common query parameters, with errors that say what to fix."""
    _check_metric(metric)
    end = _aware(until, "until") if until is not None else datetime.now(UTC)
    start = _aware(since, "since") if since is not None else end - window.length * DEFAULT_SPAN
    if start >= end:
        raise HTTPException(422, f"since ({start.isoformat()}) must be before until")
    windows = (end - start) / window.length
    if windows > MAX_POINTS:
        raise HTTPException(
            422,
            f"{windows:.0f} {window.value} windows asked; at most {MAX_POINTS}: "
            "narrow the range or use a longer window",
        )
    given = {"tenant": tenant, "model": model, "prompt": prompt, "api_key_id": api_key_id}
    equals = tuple((name, value) for name, value in given.items() if value is not None)
    return Selection(metric, window, window.start_of(start), end, equals)


Chosen = Annotated[Selection, Depends(selection)]


def _check_metric(metric: str) -> None:
    if metric.startswith("score:") and len(metric) > len("score:"):
        return
    if metric not in Aggregate().summary():
        raise HTTPException(422, f"unknown metric {metric!r}; known: {', '.join(metric_names())}")


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise HTTPException(422, f"{name} needs a timezone, e.g. 2026-11-23T10:00:00Z")
    return value.astimezone(UTC)


def _group_by(text: str | None) -> list[str]:
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in DIMENSION_NAMES]
    if unknown:
        raise HTTPException(
            422, f"unknown dimension(s) {unknown} in group_by; known: {list(DIMENSION_NAMES)}"
        )
    return names


def _labels(cell: RollupCell, keep: list[str]) -> dict[str, str]:
    dims = cell.key.dimensions.to_dict()
    return {name: dims[name] for name in keep}


def build_router(monitoring: LateBound[Monitoring]) -> APIRouter:
    router = APIRouter(prefix="/v1/metrics", tags=["metrics"])

    @router.get("/names", summary="Metrics the query API and alert rules know")
    async def names() -> dict[str, Any]:
        return {"metrics": metric_names(), "dimensions": list(DIMENSION_NAMES)}

    @router.get(
        "/series", summary="A metric over time, one series per group", response_model=SeriesAnswer
    )
    async def series(
        chosen: Chosen,
        group_by: Annotated[
            str | None, Query(description="Comma-separated dimensions, e.g. `tenant,model`.")
        ] = None,
    ) -> SeriesAnswer:
        keep = _group_by(group_by)
        cells = await monitoring.get().store.grouped(chosen.cell_query(), keep)
        grouped: dict[tuple[str, ...], Series] = {}
        for cell in cells:
            labels = _labels(cell, keep)
            line = grouped.setdefault(tuple(labels.values()), Series(labels=labels, points=[]))
            line.points.append(
                SeriesPoint(time=cell.key.start, value=cell.aggregate.metric(chosen.metric))
            )
        return SeriesAnswer(
            metric=chosen.metric,
            window=chosen.window,
            since=chosen.since,
            until=chosen.until,
            series=[grouped[key] for key in sorted(grouped)],
        )

    @router.get(
        "/top", summary="The groups with the highest value over a range", response_model=TopAnswer
    )
    async def top(
        chosen: Chosen,
        by: Annotated[str, Query(description="Comma-separated dimensions to rank, e.g. `tenant`.")],
        limit: Annotated[int, Query(ge=1, le=1000)] = 10,
        ascending: Annotated[bool, Query(description="Lowest first (e.g. worst scores).")] = False,
    ) -> TopAnswer:
        keep = _group_by(by)
        if not keep:
            raise HTTPException(422, "by needs at least one dimension, e.g. by=tenant")
        totals: dict[tuple[str, ...], tuple[dict[str, str], Aggregate]] = {}
        for cell in await monitoring.get().store.read(chosen.cell_query()):
            labels = _labels(cell, keep)
            entry = totals.setdefault(tuple(labels.values()), (labels, Aggregate()))
            entry[1].merge(cell.aggregate)
        ranked = [
            Ranked(labels=labels, value=value)
            for labels, aggregate in totals.values()
            if (value := aggregate.metric(chosen.metric)) is not None
        ]
        ranked.sort(key=lambda row: row.value, reverse=not ascending)
        return TopAnswer(
            metric=chosen.metric,
            window=chosen.window,
            since=chosen.since,
            until=chosen.until,
            by=keep,
            top=ranked[:limit],
        )

    return router


def build_alerts_router(monitoring: LateBound[Monitoring]) -> APIRouter:
    router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

    @router.get("", summary="Incidents firing now and the latest alert transitions")
    async def alerts(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        runner = monitoring.get().alerts
        if runner is None:
            return {"rules": [], "firing": [], "history": []}
        return {
            "rules": [rule.model_dump(mode="json") for rule in runner.rules.rules],
            "firing": runner.firing(),
            "history": await runner.history(limit),
        }

    return router


__all__ = ["Monitoring", "build_alerts_router", "build_router", "metric_names"]
