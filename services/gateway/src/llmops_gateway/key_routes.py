"""API key routes: `/v1/admin/keys` (admin role) and `GET /v1/me` (any key).

The secret of a key is in the answer to its creation only; listings and reads show
neither the secret nor its hash. Revoking takes effect at once on the replica that
revoked, and within GATEWAY_KEY_CACHE_TTL_S on the others.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency aliases
# made inside build_router (they close over `access`) at runtime.
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, field_validator

from llmops.llm.errors import ApiError
from llmops.tenancy import TENANT_PATTERN
from llmops_gateway.api_keys import (
    BOOTSTRAP_KEY_ID,
    ApiKeyList,
    ApiKeyView,
    Caller,
    CreatedApiKey,
    NewApiKey,
    Role,
)
from llmops_gateway.auth import EVERY_ROLE, Access

KeyId = Annotated[str, Path(max_length=100)]


class CallerView(BaseModel):
    """`GET /v1/me`: the calling key, its tenant, role and limits."""

    model_config = ConfigDict(from_attributes=True)

    key_id: str
    tenant: str
    role: Role
    allowed_models: list[str]
    requests_per_minute: int | None
    tokens_per_minute: int | None
    tokens_per_day: int | None

    @field_validator("allowed_models", mode="before")
    @classmethod
    def _sorted(cls, models: Iterable[str]) -> list[str]:
        return sorted(models)


def build_router(access: Access) -> APIRouter:
    keys = access.keys
    router = APIRouter(tags=["keys"])
    Admin = Annotated[Caller, Depends(access.caller(Role.ADMIN))]
    AnyKey = Annotated[Caller, Depends(access.caller(*EVERY_ROLE))]

    @router.post("/v1/admin/keys", status_code=status.HTTP_201_CREATED)
    async def create_key(caller: Admin, body: NewApiKey) -> CreatedApiKey:
        """Create a key; the answer holds its secret, which is not shown again."""
        return await keys.create(body, created_by=caller.key_id)

    @router.get("/v1/admin/keys")
    async def list_keys(
        caller: Admin,
        tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None,
        include_revoked: bool = False,
    ) -> ApiKeyList:
        """Keys, oldest first, optionally of one tenant; no secrets, no hashes."""
        return ApiKeyList(keys=await keys.list_keys(tenant=tenant, include_revoked=include_revoked))

    @router.get("/v1/admin/keys/{key_id}")
    async def get_key(caller: Admin, key_id: KeyId) -> ApiKeyView:
        stored = await keys.get(key_id)
        if stored is None:
            raise _not_found(key_id)
        return stored.view

    @router.delete("/v1/admin/keys/{key_id}")
    async def revoke_key(caller: Admin, key_id: KeyId) -> ApiKeyView:
        """Revoke a key for good (repeating it changes nothing); answers the revoked key."""
        if key_id == BOOTSTRAP_KEY_ID:
            msg = "the bootstrap admin key is GATEWAY_ADMIN_KEY: change that setting to rotate it"
            raise ApiError(409, msg, code="bootstrap_key")
        revoked = await keys.revoke(key_id)
        if revoked is None:
            raise _not_found(key_id)
        access.forget(key_id)
        return revoked

    @router.get("/v1/me")
    async def me(caller: AnyKey) -> CallerView:
        """The calling key: tenant, role, allowed models and limits (counts as a request)."""
        return CallerView.model_validate(caller)

    return router


def _not_found(key_id: str) -> ApiError:
    return ApiError(404, f"no API key {key_id!r}", code="key_not_found", param="key_id")
