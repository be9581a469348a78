"""Alert rules on live rollups: one firing and one resolved event per incident, on the topic
and at a webhook that is retried after it fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from monitoring_traffic import publish

from llmops.events.catalog import CONTRACTS, Topic
from llmops.events.codec import EventCodec
from llmops.testing import SettingsFactory, headers_of, read_topic, serving, wait_until
from llmops.traffic import CompletionTraffic
from llmops_monitoring.app import create_app
from llmops_monitoring.settings import MonitoringSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

RULES = """
rules:
  - kind: error_rate
    id: model-errors
    severity: critical
    window: 1d
    group_by: [model]
    max_rate: 0.2
    min_samples: 5
"""


def flaky_receiver(calls: list[dict[str, Any]]) -> FastAPI:
    """Answers 500 to the first notification, 200 afterwards; records every attempt."""
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> JSONResponse:
        calls.append({"key": request.headers["idempotency-key"], "body": await request.json()})
        return JSONResponse({}, status_code=500 if len(calls) == 1 else 200)

    return app


async def test_an_alert_fires_once_resolves_once_and_its_webhook_is_retried(
    service_settings: SettingsFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    calls: list[dict[str, Any]] = []
    async with serving(flaky_receiver(calls)) as receiver:
        settings = service_settings(
            MonitoringSettings,
            flush_interval_s=0.2,
            alert_interval_s=0.3,
            alert_rules_path=rules,
            alert_webhook_url=f"{receiver}/hook",
            alert_webhook_backoff_s=0.2,
            archive_dir="",
        )
        now = datetime.now(UTC)
        failing = CompletionTraffic(
            start=now - timedelta(seconds=1), models=("model-a",), error_every=2
        )
        async with (
            serving(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            await publish(settings, failing.events(10))
            await wait_until(lambda: _states(calls) == ["firing", "firing"], timeout=60)
            firing = (await client.get("/v1/alerts")).json()
            healthy = CompletionTraffic(start=now, models=("model-a",), seed=8)
            await publish(settings, healthy.events(100))
            await wait_until(lambda: _states(calls) == ["firing", "firing", "resolved"], timeout=60)
            after = (await client.get("/v1/alerts")).json()
            scraped = (await client.get("/metrics")).text

    prefix = settings.kafka_topic_prefix
    records = await read_topic(
        settings.kafka_bootstrap_servers, f"{prefix}{Topic.MONITORING_ALERTS}", count=2
    )
    codec = EventCodec(CONTRACTS[Topic.MONITORING_ALERTS], settings.event_wire_format)
    events = [codec.decode(r.value, headers_of(r)) for r in records]
    assert [e.data.state.value for e in events] == ["firing", "resolved"]
    assert {e.data.alert_id for e in events} == {events[0].subject}
    assert events[0].data.labels == {"model": "model-a"}
    assert events[0].data.value == pytest.approx(0.5)
    assert events[0].data.threshold == pytest.approx(0.2)
    assert events[1].data.value < 0.2  # 5 errors in 15 to 110 calls, as the flushes land

    # the failed attempt is sent again with the same idempotency key and body
    assert calls[0] == calls[1]
    assert calls[0]["key"] != calls[2]["key"]
    assert calls[2]["body"]["data"]["resolved_at"] is not None

    assert [i["rule_id"] for i in firing["firing"]] == ["model-errors"]
    assert after["firing"] == []
    assert [h["data"]["state"] for h in after["history"]] == ["resolved", "firing"]
    assert 'llmops_alerts_firing{rule="model-errors"' not in scraped


def _states(calls: list[dict[str, Any]]) -> list[str]:
    return [call["body"]["data"]["state"] for call in calls]


async def test_an_invalid_rules_file_stops_the_service_with_the_reason(
    service_settings: SettingsFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - kind: error_rate\n    id: no-rate\n")
    settings = service_settings(MonitoringSettings, alert_rules_path=rules, archive_dir="")
    with pytest.raises(SystemExit, match="max_rate"):
        create_app(settings)


async def test_a_drift_rule_naming_an_unknown_check_is_refused(
    service_settings: SettingsFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - kind: drift\n    id: topics\n    metric: topics\n    tenant: a\n")
    settings = service_settings(MonitoringSettings, alert_rules_path=rules, archive_dir="")
    with pytest.raises(SystemExit, match="names check 'topics'; known checks: query_embedding"):
        create_app(settings)
