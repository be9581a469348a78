"""API keys: who may call the gateway, for which tenant, in which role, within which limits.

A key's secret (`sk-llmops-...`) is shown once, when it is created; MongoDB keeps only its
SHA-256. The key id is derived from that hash, so the gateway finds a presented key by
`_id` (the one lookup FerretDB pushes down) and then compares the whole hash.

Collection `api_keys`: `_id` = key id, `secret_sha256`, name, tenant, role, allowed
models, limits, `created_at`, `created_by`, `revoked_at`. Limits never change after
creation: to change them, create a new key and revoke the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from llmops.llm.errors import ApiError
from llmops.service import LateBound
from llmops.storage import MongoDocument
from llmops.tenancy import DEFAULT_TENANT, TENANT_PATTERN

SECRET_PREFIX = "sk-llmops-"  # noqa: S105 - the public prefix of every key, not a secret
KEY_ID_PREFIX = "key-"
BOOTSTRAP_KEY_ID = "bootstrap-admin"
COLLECTION = "api_keys"
ModelName = Annotated[str, StringConstraints(pattern=r"^[\w.:/@-]{1,200}$")]


class Role(StrEnum):
    """What a key may do: `app` calls models and manages its tenant's documents, `analyst`
    only reads (search, renders, job views), `admin` also manages keys."""

    APP = "app"
    ANALYST = "analyst"
    ADMIN = "admin"


def new_secret() -> str:
    """A fresh key secret: the prefix plus 256 random bits, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """What is stored instead of the secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def key_id_for(digest: str) -> str:
    """The key id of a secret hash: 96 bits of it, enough to be unique, useless to guess from."""
    return KEY_ID_PREFIX + digest[:24]


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two secret hashes."""
    return hmac.compare_digest(a.encode(), b.encode())


class NewApiKey(BaseModel):
    """`POST /v1/admin/keys`: what the key is for and what it may use. Unset limits mean none."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="What the key is for.")
    tenant: str = Field(DEFAULT_TENANT, pattern=TENANT_PATTERN)
    role: Role = Role.APP
    allowed_models: list[ModelName] = Field(
        default_factory=list,
        max_length=100,
        description="Model aliases the key may call; empty means every model.",
    )
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    tokens_per_day: int | None = Field(None, ge=1, description="Token budget per UTC day.")


class ApiKeyView(NewApiKey):
    """A key as the admin API shows it: never its secret, never its hash."""

    id: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None


class CreatedApiKey(ApiKeyView):
    """The answer to a creation: the only time the secret is shown."""

    secret: str = Field(description="Send as `Authorization: Bearer <secret>`; not shown again.")


class ApiKeyList(BaseModel):
    keys: list[ApiKeyView]


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified key behind a request: routes act for `tenant`, within the key's limits."""

    key_id: str
    tenant: str
    role: Role
    allowed_models: frozenset[str] = frozenset()
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models

    def ensure_model(self, model: str) -> None:
        """Raise 403 when the key may not call `model`."""
        if not self.may_use(model):
            allowed = ", ".join(sorted(self.allowed_models))
            raise ApiError(
                403,
                f"this API key may not use model {model!r}; it may use: {allowed}",
                code="model_not_allowed",
                param="model",
            )

    @classmethod
    def of(cls, key: ApiKeyView) -> Caller:
        return cls(
            key_id=key.id,
            tenant=key.tenant,
            role=key.role,
            allowed_models=frozenset(key.allowed_models),
            requests_per_minute=key.requests_per_minute,
            tokens_per_minute=key.tokens_per_minute,
            tokens_per_day=key.tokens_per_day,
        )


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key as read back for authentication: its view and the hash to compare."""

    view: ApiKeyView
    secret_sha256: str


class KeyStore:
    """The `api_keys` collection: create, read, list and revoke keys."""

    def __init__(self) -> None:
        self._keys: LateBound[AsyncCollection[MongoDocument]] = LateBound("the API key store")

    def bind(self, db: AsyncDatabase[MongoDocument]) -> None:
        """Use the service's database (opened in the lifespan)."""
        self._keys.set(db[COLLECTION])

    async def create_indexes(self) -> None:
        await self._keys.get().create_index([("tenant", ASCENDING), ("created_at", ASCENDING)])

    async def create(self, spec: NewApiKey, *, created_by: str) -> CreatedApiKey:
        """Store a new key and return it with its secret, which is not kept."""
        secret = new_secret()
        digest = secret_hash(secret)
        view = ApiKeyView(
            **spec.model_dump(),
            id=key_id_for(digest),
            created_at=datetime.now(UTC),
            created_by=created_by,
        )
        document = view.model_dump(mode="python", exclude={"id"})
        await self._keys.get().insert_one(
            {"_id": view.id, "secret_sha256": digest, **document, "role": view.role.value}
        )
        return CreatedApiKey(**view.model_dump(), secret=secret)

    async def get(self, key_id: str) -> StoredKey | None:
        document = await self._keys.get().find_one({"_id": key_id})
        if document is None:
            return None
        return StoredKey(view=_view(document), secret_sha256=document["secret_sha256"])

    async def list_keys(self, *, tenant: str | None, include_revoked: bool) -> list[ApiKeyView]:
        """Keys, oldest first; a rare admin call, so a filter on fields is fine here."""
        query: MongoDocument = {}
        if tenant is not None:
            query["tenant"] = tenant
        if not include_revoked:
            query["revoked_at"] = None
        cursor = self._keys.get().find(query, {"secret_sha256": 0}).sort("created_at", ASCENDING)
        return [_view(document) async for document in cursor]

    async def revoke(self, key_id: str) -> ApiKeyView | None:
        """Mark the key revoked (the first revocation time is kept); None when unknown."""
        keys = self._keys.get()
        await keys.update_one(
            {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": datetime.now(UTC)}}
        )
        stored = await self.get(key_id)
        return None if stored is None else stored.view


def _view(document: MongoDocument) -> ApiKeyView:
    fields = {k: v for k, v in document.items() if k not in ("_id", "secret_sha256")}
    return ApiKeyView(id=document["_id"], **fields)
