"""Every service starts against real Kafka and MongoDB, reports healthy and joins its group."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from llmops.settings import ServiceSettings
from llmops.testing import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

SERVICES = [
    "gateway",
    "ingestion",
    "indexer",
    "prompts",
    "inference",
    "evaluation",
    "monitoring",
    "feedback",
]


def _load(service: str) -> tuple[type[ServiceSettings], Callable[[Any], Any], tuple[str, ...]]:
    settings_module = importlib.import_module(f"llmops_{service}.settings")
    app_module = importlib.import_module(f"llmops_{service}.app")
    settings_type = getattr(settings_module, f"{service.capitalize()}Settings")
    return settings_type, app_module.create_app, tuple(getattr(app_module, "CONSUMES", ()))


@pytest.mark.parametrize("service", SERVICES)
async def test_service_is_healthy_serves_metrics_and_joins_its_group(
    service: str, service_settings: Callable[..., ServiceSettings]
) -> None:
    settings_type, create_app, consumes = _load(service)
    settings = service_settings(settings_type)
    app = create_app(settings)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            health = await client.get("/healthz")
            metrics = await client.get("/metrics")
        if consumes:
            members = await wait_until(
                lambda: _group_members(settings), timeout=60, what=f"{service} to join its group"
            )
            assert members >= 1

    assert health.status_code == 200, health.text
    extra = {"indexer": {"qdrant": "ok"}, "monitoring": {"rollups": "ok", "archive": "ok"}}
    checks = {"kafka": "ok", "mongodb": "ok"} | extra.get(service, {})
    assert health.json() == {"status": "ok", "service": service, "checks": checks}
    assert metrics.status_code == 200
    assert 'llmops_http_requests_total{method="GET",route="/healthz"' in metrics.text.replace(
        f'service="{service}",', ""
    )
    assert "process_cpu_seconds_total" in metrics.text


async def _group_members(settings: ServiceSettings) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        (description,) = await admin.describe_consumer_groups([settings.consumer_group])
    finally:
        await admin.close()
    groups = description.groups if hasattr(description, "groups") else []
    return sum(len(group[5]) for group in groups if group[2] == "Stable")
