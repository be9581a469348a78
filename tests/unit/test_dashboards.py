"""Grafana dashboards: valid dashboard JSON, provisioned, and querying only metrics that exist.

Every metric name in a PromQL expression must be exported by the code (a `"llmops_..."`
literal in libs/ or services/) or be one of the monitoring service's announced metrics
below, so a renamed or misspelt metric fails here rather than as an empty panel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "infra/compose/grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PROVIDERS = GRAFANA / "provisioning/dashboards/dashboards.yaml"
DATASOURCES = GRAFANA / "provisioning/datasources/datasources.yaml"

# The metrics the monitoring service computes from the event streams (issue 7): labels
# tenant, model, prompt, api_key_id unless noted. Until the service defines them, these
# names are accepted as announced; once its source names any of them, only the source counts.
MONITORING_METRICS = frozenset(
    {
        "llmops_llm_requests_total",
        "llmops_llm_errors_total",
        "llmops_llm_tokens_total",  # kind="prompt"|"completion"
        "llmops_llm_cost_usd_total",
        "llmops_llm_cache_hits_total",
        "llmops_llm_refusals_total",
        "llmops_eval_score_sum",  # + metric
        "llmops_eval_score_count",  # + metric
        "llmops_feedback_total",
        "llmops_feedback_negative_total",
        "llmops_feedback_score_sum",
        "llmops_ingest_documents_total",  # tenant, outcome="done"|"failed"
        "llmops_ingest_chunks_total",  # tenant
        "llmops_monitoring_events_total",  # topic
        "llmops_llm_latency_ms",  # quantile="0.5"|"0.95"|"0.99", trailing 5 minutes
        "llmops_llm_ttft_ms",  # quantile
        "llmops_alerts_firing",  # rule, severity
        "llmops_drift_statistic",  # scope, check
        "llmops_drift_detected",  # scope, check; 0 or 1
    }
)
PROMETHEUS_METRICS = frozenset({"up", "process_cpu_seconds_total", "process_resident_memory_bytes"})
GRAFANA_VARIABLES = frozenset({"__rate_interval", "__interval", "__range", "__range_s"})

_LITERAL = re.compile(r"[\"'](llmops_[a-z0-9_]+)[\"']")
_SERIES_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][\w:]*)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


@cache
def exported_metrics() -> frozenset[str]:
    """Series names the code exports: every `llmops_*` literal, with the suffixes
    prometheus_client adds (`_total` for counters, `_bucket`/`_sum`/`_count` for histograms)."""
    sources = [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]
    literals = {name for path in sources for name in _LITERAL.findall(path.read_text())}
    return frozenset(name + suffix for name in literals for suffix in _SERIES_SUFFIXES)


def allowed_metrics() -> frozenset[str]:
    exported = exported_metrics()
    if exported & MONITORING_METRICS:  # the service has landed its metrics: the code decides
        return exported | PROMETHEUS_METRICS
    return exported | MONITORING_METRICS | PROMETHEUS_METRICS


def load(path: Path) -> dict[str, Any]:
    board = json.loads(path.read_text())
    assert isinstance(board, dict)
    return board


def panels_of(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def expressions(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in panels_of(board):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = _LABEL_VALUES.match(text)
            assert match, f"variable {variable['name']}: expected label_values(...), got {text!r}"
            yield f"variable {variable['name']!r}", match.group(1)


def prometheus_uid() -> str:
    datasources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    (uid,) = [d["uid"] for d in datasources if d["type"] == "prometheus"]
    return str(uid)


def test_the_three_dashboards_exist_with_unique_uids_and_titles() -> None:
    assert {path.stem for path in DASHBOARDS} >= {"llm-overview", "quality", "ingestion"}
    boards = [load(path) for path in DASHBOARDS]
    uids = [board["uid"] for board in boards]
    titles = [board["title"] for board in boards]
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_dashboard_is_valid_grafana_json(path: Path) -> None:
    board = load(path)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board["uid"]), board.get("uid")
    assert board["title"].strip()
    assert isinstance(board["schemaVersion"], int)
    assert board.get("id") is None, "a provisioned dashboard has no database id"
    panels = list(panels_of(board))
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    queried = 0
    for panel in panels:
        assert panel["type"], panel
        assert panel["title"].strip(), panel
        grid = panel["gridPos"]
        assert all(isinstance(grid[key], int) for key in ("h", "w", "x", "y")), panel["title"]
        assert min(grid["w"], grid["h"]) >= 1, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] in {"row", "text"}:
            assert not panel.get("targets")
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": prometheus_uid()}
        targets = panel["targets"]
        assert targets, f"panel {panel['title']!r} has no query"
        assert len({target["refId"] for target in targets}) == len(targets)
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]
            queried += 1
    assert queried >= 5


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_every_metric_a_dashboard_queries_is_exported(path: Path) -> None:
    board = load(path)
    allowed = allowed_metrics()
    unknown = {
        f"{where}: {name}"
        for where, expr in expressions(board)
        for name in metric_names(expr)
        if name not in allowed
    }
    assert not unknown, f"metrics nobody exports: {sorted(unknown)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_every_variable_a_query_uses_is_defined(path: Path) -> None:
    board = load(path)
    defined = {variable["name"] for variable in board["templating"]["list"]}
    used = {
        (where, name)
        for where, expr in expressions(board)
        for name in _VARIABLE.findall(expr)
        if name not in GRAFANA_VARIABLES
    }
    for panel in panels_of(board):
        used |= {(panel["title"], name) for name in _VARIABLE.findall(panel["title"])}
    assert {(where, name) for where, name in used if name not in defined} == set()


def test_dashboards_are_provisioned_from_the_mounted_folder() -> None:
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./infra/compose/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./infra/compose/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (model) (rate(llmops_llm_requests_total{tenant=~"$tenant"}[5m]))',
            {"llmops_llm_requests_total"},
        ),
        (
            "sum(increase(a_total[$window])) / sum(increase(b_total[$__range])) * 3600",
            {"a_total", "b_total"},
        ),
        (
            'histogram_quantile(0.95, sum by (le, route) (rate(x_bucket{service=~"a|b"}[1m])))',
            {"x_bucket"},
        ),
        ('max(llmops_llm_latency_ms{quantile="0.95"}) > bool 1e3', {"llmops_llm_latency_ms"}),
        ("a_total / on (tenant) group_left (model) b_info", {"a_total", "b_info"}),
        ("sort_desc(sum without (instance) (up))", {"up"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_renamed_metric_is_caught() -> None:
    assert "llmops_llm_request_total" not in allowed_metrics()
    assert "llmops_events_consumed_total" in exported_metrics()
    assert "llmops_http_request_duration_seconds_bucket" in exported_metrics()
