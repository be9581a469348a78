"""A RawRequestRoute serves its endpoint with the bare request, and is documented like any."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from llmops.llm.errors import install_error_handlers
from llmops.llm.models import EmbeddingRequest
from llmops.llm.requests import RawRequestRoute, read_json


def _app() -> FastAPI:
    api = APIRouter(prefix="/v1", route_class=RawRequestRoute)

    @api.post("/embeddings", summary="Echo the input")
    async def embeddings(request: Request) -> JSONResponse:
        body = await read_json(request, EmbeddingRequest, max_bytes=1024)
        return JSONResponse({"model": body.model, "path": request.url.path})

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(api)
    return app


async def test_the_endpoint_gets_the_request_and_its_errors_are_api_errors() -> None:
    app = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        answered = await client.post("/v1/embeddings", json={"model": "m", "input": "hi"})
        invalid = await client.post("/v1/embeddings", json={"input": "hi"})

    assert answered.status_code == 200
    assert answered.json() == {"model": "m", "path": "/v1/embeddings"}
    assert invalid.status_code == 400
    assert invalid.json()["error"]["param"] == "model"


def test_the_route_is_in_the_openapi_schema() -> None:
    operation = _app().openapi()["paths"]["/v1/embeddings"]["post"]
    assert operation["summary"] == "Echo the input"


def test_an_endpoint_that_does_not_take_only_the_request_is_refused() -> None:
    api = APIRouter(route_class=RawRequestRoute)
    with pytest.raises(TypeError, match="async def f\\(request: Request\\)"):

        @api.post("/models")
        async def models(request: Request) -> dict[str, str]:
            return {}

    with pytest.raises(TypeError, match="async def f\\(request: Request\\)"):

        @api.post("/two")
        async def two(request: Request, extra: int) -> JSONResponse:
            return JSONResponse({})
