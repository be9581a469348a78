"""HTTP API of the model registry (`/v1/registry/models`): register, list, read, change stage."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from llmops.service import LateBound
from llmops_inference.engine_pool import EnginePool
from llmops_inference.model_registry import (
    ModelRecord,
    ModelStage,
    NewModel,
    StageChangeRequest,
)


def build_registry_router(pools: LateBound[EnginePool]) -> APIRouter:
    router = APIRouter(prefix="/v1/registry/models", tags=["registry"])
    # Resolved by FastAPI from this closure: no `from __future__ import annotations` here.
    Pool = Annotated[EnginePool, Depends(pools.get)]

    @router.post("", status_code=status.HTTP_201_CREATED)
    async def register(body: NewModel, pool: Pool, response: Response) -> ModelRecord:
        """Register a model (201); the same definition again returns it (200), another 409."""
        record, created = await pool.registry.register(body)
        if not created:
            response.status_code = status.HTTP_200_OK
        pool.forget(body.name)
        return record

    @router.get("")
    async def list_models(
        pool: Pool, stage: Annotated[ModelStage | None, Query()] = None
    ) -> dict[str, list[ModelRecord]]:
        return {"models": await pool.registry.all(stage)}

    @router.get("/{name:path}")
    async def get_model(name: str, pool: Pool) -> ModelRecord:
        return await pool.registry.get(name)

    @router.put("/{name:path}/stage")
    async def change_stage(name: str, body: StageChangeRequest, pool: Pool) -> ModelRecord:
        """Move a model to a stage; retiring it unloads its engine on this replica now and
        on the others within `INFERENCE_REGISTRY_CACHE_S`."""
        record = await pool.registry.change_stage(name, body)
        pool.forget(name)
        if not record.servable:
            await pool.unload(name)
        return record

    return router
