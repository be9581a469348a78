"""Who is calling: `Authorization: Bearer <key>` → a `Caller`, checked for its role and
counted against its requests per minute.

Verified keys (and unknown ones) are cached in each replica for GATEWAY_KEY_CACHE_TTL_S
seconds, so the hot path does not read MongoDB per request. The cost: a revoked key
keeps working on the other replicas until their cached entry expires (at most that
TTL); the replica that revoked it stops at once. `GATEWAY_ADMIN_KEY` is an admin key
that is not stored, for creating the first keys (tenant `default`, no limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo.errors import PyMongoError

from llmops.llm.errors import ApiError
from llmops.service import ServiceContext
from llmops.telemetry import get_logger
from llmops.tenancy import DEFAULT_TENANT
from llmops_gateway.api_keys import (
    BOOTSTRAP_KEY_ID,
    Caller,
    KeyStore,
    Role,
    key_id_for,
    same_hash,
    secret_hash,
)
from llmops_gateway.quotas import MongoLeaseStore, QuotaGuard, sweep_expired_leases
from llmops_gateway.settings import GatewaySettings

_log = get_logger(__name__)

_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="API key",
    description="`Authorization: Bearer sk-llmops-...` (an API key from `POST /v1/admin/keys`)",
)
_MAX_SECRET_CHARS = 512
_UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}

Authenticate = Callable[[Request], Awaitable[Caller]]
"""Authenticates a request (401), checks the key's role (403), counts it (429)."""

EVERY_ROLE = (Role.APP, Role.ANALYST, Role.ADMIN)
WRITERS = (Role.APP, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a presented key is refused (401), cached like a verified key."""

    code: str
    message: str


_INVALID = Refusal("invalid_api_key", "invalid API key")


class Authenticator:
    """Turns a presented secret into a `Caller`, with a short per-replica cache."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        admin_secret: str | None,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._admin_hash = secret_hash(admin_secret) if admin_secret else None
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, tuple[Caller | Refusal, float]] = {}

    async def verify(self, secret: str | None) -> Caller:
        """The caller behind `secret`; 401 when it is missing, unknown or revoked."""
        if not secret:
            msg = "no API key: send `Authorization: Bearer <key>`"
            raise ApiError(401, msg, code="missing_api_key", headers=_UNAUTHENTICATED)
        if len(secret) > _MAX_SECRET_CHARS:
            raise ApiError(401, _INVALID.message, code=_INVALID.code, headers=_UNAUTHENTICATED)
        digest = secret_hash(secret)
        if self._admin_hash is not None and same_hash(digest, self._admin_hash):
            return Caller(key_id=BOOTSTRAP_KEY_ID, tenant=DEFAULT_TENANT, role=Role.ADMIN)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            verdict = cached[0]
        else:
            verdict = await self._load(digest)
            self._remember(digest, verdict, now)
        if isinstance(verdict, Refusal):
            raise ApiError(401, verdict.message, code=verdict.code, headers=_UNAUTHENTICATED)
        return verdict

    def forget(self, key_id: str) -> None:
        """Drop a key from this replica's cache (after revoking it here)."""
        for digest in [
            digest
            for digest, (verdict, _) in self._cache.items()
            if isinstance(verdict, Caller) and verdict.key_id == key_id
        ]:
            del self._cache[digest]

    async def _load(self, digest: str) -> Caller | Refusal:
        try:
            stored = await self._keys.get(key_id_for(digest))
        except PyMongoError as exc:
            msg = "the key store is unreachable; retry shortly"
            raise ApiError(503, msg, code="key_store_unavailable") from exc
        if stored is None or not same_hash(digest, stored.secret_sha256):
            return _INVALID
        if stored.view.revoked_at is not None:
            revoked = stored.view.revoked_at.isoformat(timespec="seconds")
            return Refusal("revoked_api_key", f"this API key was revoked at {revoked}")
        return Caller.of(stored.view)

    def _remember(self, digest: str, verdict: Caller | Refusal, now: float) -> None:
        if self._ttl_s <= 0:
            return
        if len(self._cache) >= self._max_entries:
            live = {d: entry for d, entry in self._cache.items() if entry[1] > now}
            # Still full of live entries (a flood of made-up keys): start over.
            self._cache = live if len(live) < self._max_entries // 2 else {}
        self._cache[digest] = (verdict, now + self._ttl_s)


class Access:
    """The gateway's door: API keys, authentication, role checks and quotas, wired once.

    Routes depend on `caller(*roles)`; the chat path also reserves tokens with
    `quotas.admit(caller, estimated_tokens)` and settles them after the call.
    """

    def __init__(
        self,
        *,
        keys: KeyStore,
        leases: MongoLeaseStore,
        authenticator: Authenticator,
        quotas: QuotaGuard,
    ) -> None:
        self.keys = keys
        self.authenticator = authenticator
        self.quotas = quotas
        self._leases = leases

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> Access:
        keys = KeyStore()
        leases = MongoLeaseStore()
        admin_secret = settings.admin_key.get_secret_value() or None
        return cls(
            keys=keys,
            leases=leases,
            authenticator=Authenticator(
                keys, admin_secret=admin_secret, ttl_s=settings.key_cache_ttl_s
            ),
            quotas=QuotaGuard(leases),
        )

    def bind(self, context: ServiceContext) -> None:
        """Use the service's database; index it and sweep expired leases in the background."""
        self.keys.bind(context.db)
        self._leases.bind(context.db)
        upkeep = asyncio.get_running_loop().create_task(self._upkeep())
        context.resources.push_async_callback(_cancel, upkeep)

    def caller(self, *roles: Role) -> Authenticate:
        """A FastAPI dependency (or a plain call, `await authenticate(request)`) that answers
        the request's `Caller`: 401 without a valid key, 403 for another role, 429 past the
        key's requests per minute (the request is counted here)."""
        allowed = frozenset(roles)
        needed = " or ".join(sorted(allowed))

        async def authenticate(
            request: Request,
            # Read from the request below; declared so that /docs offers "Authorize".
            _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
        ) -> Caller:
            caller = await self.authenticator.verify(bearer_secret(request))
            if caller.role not in allowed:
                msg = f"this route needs a key with role {needed}; this key's role is {caller.role}"
                raise ApiError(403, msg, code="insufficient_role")
            await self.quotas.admit_request(caller)
            request.state.caller = caller
            return caller

        return authenticate

    def forget(self, key_id: str) -> None:
        self.authenticator.forget(key_id)

    async def _upkeep(self) -> None:
        try:
            await self.keys.create_indexes()
            await self._leases.create_indexes()
        except PyMongoError as exc:
            _log.warning("could not create the key and quota indexes", error=repr(exc)[:200])
        await sweep_expired_leases(self._leases)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def bearer_secret(request: Request) -> str | None:
    """The secret of an `Authorization: Bearer <secret>` header, if there is one."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip() or None
