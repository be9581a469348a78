"""API keys: secrets and their hashes, key ids, the request model, and the caching
authenticator (over an in-memory key store)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from llmops.llm.errors import ApiError
from llmops_gateway.api_keys import (
    BOOTSTRAP_KEY_ID,
    ApiKeyView,
    Caller,
    NewApiKey,
    Role,
    StoredKey,
    key_id_for,
    new_secret,
    secret_hash,
)
from llmops_gateway.auth import Authenticator

BOOTSTRAP_ADMIN = "admin-secret-for-tests-0123456789abcdef"


def test_a_secret_is_prefixed_random_and_stored_only_as_its_sha256() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    secret = secrets.pop()
    assert secret.startswith("sk-llmops-")
    assert len(secret) >= len("sk-llmops-") + 43  # 256 random bits, URL-safe base64
    assert secret_hash(secret) == hashlib.sha256(secret.encode()).hexdigest()
    key_id = key_id_for(secret_hash(secret))
    assert key_id.startswith("key-")
    assert key_id == key_id_for(secret_hash(secret))
    assert secret.removeprefix("sk-llmops-")[:8] not in key_id


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "a", "tenant": "no spaces"},
        {"name": "a", "role": "owner"},
        {"name": "a", "allowed_models": ["gpt 4"]},
        {"name": "a", "requests_per_minute": 0},
        {"name": "a", "tokens_per_day": -5},
        {"name": "a", "secret": "chosen-by-me"},
    ],
)
def test_bad_key_requests_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NewApiKey.model_validate(body)


def test_a_caller_may_use_only_its_allowed_models() -> None:
    anything = Caller(key_id="k", tenant="t", role=Role.APP)
    narrow = Caller(key_id="k", tenant="t", role=Role.APP, allowed_models=frozenset({"small"}))
    assert anything.may_use("big")
    narrow.ensure_model("small")
    with pytest.raises(ApiError) as refused:
        narrow.ensure_model("big")
    assert (refused.value.status, refused.value.code) == (403, "model_not_allowed")


class KeyTable:
    """The key store's read side, in memory; counts reads."""

    def __init__(self) -> None:
        self.keys: dict[str, StoredKey] = {}
        self.reads = 0

    def add(self, secret: str, *, revoked: bool = False) -> str:
        digest = secret_hash(secret)
        view = ApiKeyView(
            id=key_id_for(digest),
            name="test",
            tenant="acme",
            role=Role.APP,
            requests_per_minute=10,
            created_at=datetime.now(UTC),
            created_by=BOOTSTRAP_KEY_ID,
            revoked_at=datetime.now(UTC) if revoked else None,
        )
        self.keys[view.id] = StoredKey(view=view, secret_sha256=digest)
        return view.id

    async def get(self, key_id: str) -> StoredKey | None:
        self.reads += 1
        return self.keys.get(key_id)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _authenticator(table: KeyTable, clock: Clock, ttl_s: float = 5.0) -> Authenticator:
    return Authenticator(
        table,  # type: ignore[arg-type]  # the read side of KeyStore is all it uses
        admin_secret=BOOTSTRAP_ADMIN,
        ttl_s=ttl_s,
        clock=clock,
    )


async def _refusal(authenticator: Authenticator, secret: str | None) -> tuple[int, str | None]:
    with pytest.raises(ApiError) as refused:
        await authenticator.verify(secret)
    assert refused.value.headers["WWW-Authenticate"] == "Bearer"
    return refused.value.status, refused.value.code


async def test_a_verified_key_is_read_once_per_ttl() -> None:
    table, clock = KeyTable(), Clock()
    secret = new_secret()
    key_id = table.add(secret)
    authenticator = _authenticator(table, clock)

    callers = [await authenticator.verify(secret) for _ in range(50)]
    assert {(c.key_id, c.tenant, c.role, c.requests_per_minute) for c in callers} == {
        (key_id, "acme", Role.APP, 10)
    }
    assert table.reads == 1
    clock.now += 5.1
    await authenticator.verify(secret)
    assert table.reads == 2


async def test_missing_unknown_and_revoked_keys_are_401_and_revocation_shows_after_the_ttl() -> (
    None
):
    table, clock = KeyTable(), Clock()
    secret = new_secret()
    table.add(secret)
    authenticator = _authenticator(table, clock)
    await authenticator.verify(secret)

    assert await _refusal(authenticator, None) == (401, "missing_api_key")
    assert await _refusal(authenticator, "sk-llmops-made-up") == (401, "invalid_api_key")
    assert await _refusal(authenticator, "x" * 10_000) == (401, "invalid_api_key")
    reads = table.reads
    assert await _refusal(authenticator, "sk-llmops-made-up") == (401, "invalid_api_key")
    assert table.reads == reads, "an unknown key is cached too"

    table.add(secret, revoked=True)
    await authenticator.verify(secret)  # still cached on this replica
    clock.now += 5.1
    assert await _refusal(authenticator, secret) == (401, "revoked_api_key")


async def test_forget_drops_the_cached_key_at_once() -> None:
    table, clock = KeyTable(), Clock()
    secret = new_secret()
    key_id = table.add(secret)
    authenticator = _authenticator(table, clock)
    await authenticator.verify(secret)
    table.add(secret, revoked=True)
    authenticator.forget(key_id)
    assert await _refusal(authenticator, secret) == (401, "revoked_api_key")


async def test_the_bootstrap_admin_key_is_an_unlimited_admin_of_the_default_tenant() -> None:
    table = KeyTable()
    caller = await _authenticator(table, Clock()).verify(BOOTSTRAP_ADMIN)
    assert (caller.key_id, caller.tenant, caller.role) == (BOOTSTRAP_KEY_ID, "default", Role.ADMIN)
    assert caller.requests_per_minute is None
    assert table.reads == 0
    no_bootstrap = Authenticator(table, admin_secret=None, ttl_s=5.0)  # type: ignore[arg-type]
    assert await _refusal(no_bootstrap, BOOTSTRAP_ADMIN) == (401, "invalid_api_key")
