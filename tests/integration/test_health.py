"""/healthz says 503 and names the dependency that fails, so orchestrators hold traffic."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from llmops.service import ServiceContext, create_service_app
from llmops.settings import ServiceSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]


async def test_a_failing_dependency_makes_the_service_unavailable(
    service_settings: Callable[..., ServiceSettings],
) -> None:
    def wire(context: ServiceContext) -> None:
        async def vector_store() -> None:
            msg = "connection refused"
            raise ConnectionError(msg)

        context.health_checks["qdrant"] = vector_store

    app = create_service_app(service_settings(), wire=wire)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            response = await client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["kafka"] == body["checks"]["mongodb"] == "ok"
    assert body["checks"]["qdrant"] == "error: ConnectionError('connection refused')"
