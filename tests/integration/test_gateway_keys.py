"""API keys, tenants and quotas on the real gateway: the admin API, 401/403, revocation,
the tenant taken from the key, and limits that hold across two gateway processes sharing
one MongoDB database (real Kafka, real FerretDB)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pymongo import AsyncMongoClient

from llmops.cli.main import main as cli_main
from llmops.settings import ServiceSettings
from llmops.storage import MongoDocument
from llmops.tenancy import TENANT_HEADER
from llmops.testing import (
    SettingsFactory,
    bearer,
    create_api_key,
    free_port,
    serving,
    wait_until,
)
from llmops_gateway.api_keys import Caller, Role, key_id_for, secret_hash
from llmops_gateway.app import create_app as create_gateway
from llmops_gateway.quotas import MongoLeaseStore, QuotaExceeded, QuotaGuard, slot_size
from llmops_gateway.settings import GatewaySettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

ADMIN_KEY = "sk-llmops-test-admin-0123456789abcdef"
KEY_CACHE_TTL_S = 1.0


@pytest.fixture
async def gateway(service_settings: SettingsFactory) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(
        GatewaySettings, admin_key=ADMIN_KEY, key_cache_ttl_s=KEY_CACHE_TTL_S
    )
    async with (
        serving(create_gateway(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


async def test_admin_creates_lists_reads_and_revokes_keys(gateway: httpx.AsyncClient) -> None:
    spec = {
        "name": "support bot",
        "tenant": "acme",
        "allowed_models": ["chat"],
        "requests_per_minute": 600,
        "tokens_per_minute": 100_000,
        "tokens_per_day": 2_000_000,
    }
    created = await gateway.post("/v1/admin/keys", json=spec, headers=bearer(ADMIN_KEY))
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["secret"].startswith("sk-llmops-")
    assert {k: key[k] for k in spec} == spec
    assert (key["role"], key["created_by"], key["revoked_at"]) == ("app", "bootstrap-admin", None)

    me = await gateway.get("/v1/me", headers=bearer(key["secret"]))
    assert me.status_code == 200, me.text
    assert (me.json()["key_id"], me.json()["tenant"]) == (key["id"], "acme")

    listed = await gateway.get("/v1/admin/keys", headers=bearer(ADMIN_KEY))
    assert [k["id"] for k in listed.json()["keys"]] == [key["id"]]
    read = await gateway.get(f"/v1/admin/keys/{key['id']}", headers=bearer(ADMIN_KEY))
    for view in (*listed.json()["keys"], read.json()):
        assert "secret" not in view
        assert "secret_sha256" not in view
        assert key["secret"] not in str(view)

    revoked = await gateway.delete(f"/v1/admin/keys/{key['id']}", headers=bearer(ADMIN_KEY))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    refused = await gateway.get("/v1/me", headers=bearer(key["secret"]))
    assert refused.status_code == 401  # at once on the replica that revoked it
    assert refused.json()["error"]["code"] == "revoked_api_key"
    active = await gateway.get("/v1/admin/keys", headers=bearer(ADMIN_KEY))
    assert active.json()["keys"] == []
    every = await gateway.get(
        "/v1/admin/keys", params={"include_revoked": "true"}, headers=bearer(ADMIN_KEY)
    )
    assert [k["id"] for k in every.json()["keys"]] == [key["id"]]

    missing = await gateway.get("/v1/admin/keys/key-nope", headers=bearer(ADMIN_KEY))
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "key_not_found")
    bootstrap = await gateway.delete("/v1/admin/keys/bootstrap-admin", headers=bearer(ADMIN_KEY))
    assert bootstrap.status_code == 409


async def test_missing_bad_and_out_of_role_keys_get_openai_errors(
    gateway: httpx.AsyncClient,
) -> None:
    app_key = await create_api_key(gateway, ADMIN_KEY, tenant="acme")
    analyst_key = await create_api_key(gateway, ADMIN_KEY, tenant="acme", role="analyst")

    async def error(method: str, path: str, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
        response = await gateway.request(method, path, headers=headers, **kw)
        body = response.json()["error"]
        assert set(body) == {"message", "type", "param", "code"}
        return response.status_code, body["code"]

    assert await error("GET", "/v1/me", {}) == (401, "missing_api_key")
    assert await error("GET", "/v1/me", {"Authorization": "Basic abc"}) == (401, "missing_api_key")
    assert await error("GET", "/v1/me", bearer("sk-llmops-wrong")) == (401, "invalid_api_key")
    new_key = {"json": {"name": "x"}}
    assert await error("POST", "/v1/admin/keys", bearer(app_key), **new_key) == (
        403,
        "insufficient_role",
    )
    upload = {"data": {"collection": "kb"}, "files": [("files", ("a.txt", b"hi", "text/plain"))]}
    assert await error("POST", "/v1/documents", bearer(analyst_key), **upload) == (
        403,
        "insufficient_role",
    )
    assert await error("DELETE", "/v1/documents/kb/doc-1", bearer(analyst_key)) == (
        403,
        "insufficient_role",
    )
    bad_body = {"json": {"name": "x", "role": "owner"}}
    assert await error("POST", "/v1/admin/keys", bearer(ADMIN_KEY), **bad_body) == (
        400,
        "invalid_request",
    )


async def test_internal_calls_carry_the_tenant_of_the_key_not_the_clients_header(
    service_settings: SettingsFactory,
) -> None:
    seen: list[str | None] = []
    ingestion = FastAPI()

    @ingestion.get("/v1/jobs")
    async def jobs(request: Request) -> dict[str, Any]:
        seen.append(request.headers.get(TENANT_HEADER))
        return {"jobs": []}

    async with serving(ingestion) as ingestion_url:
        settings = service_settings(
            GatewaySettings, admin_key=ADMIN_KEY, ingestion_url=ingestion_url
        )
        async with (
            serving(create_gateway(settings)) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            analyst = await create_api_key(client, ADMIN_KEY, tenant="acme", role="analyst")
            spoofed = {**bearer(analyst), TENANT_HEADER: "globex"}
            response = await client.get("/v1/documents/jobs", headers=spoofed)
            assert response.status_code == 200, response.text
            unauthenticated = await client.get(
                "/v1/documents/jobs", headers={TENANT_HEADER: "acme"}
            )
            assert unauthenticated.status_code == 401
    assert seen == ["acme"]


# -- two gateway processes, one database ------------------------------------------------


@contextmanager
def _gateway_process(settings: ServiceSettings, port: int) -> Iterator[str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "MONGODB_URL": settings.mongodb_url.get_secret_value(),
        "MONGODB_DATABASE": settings.mongodb_database,
        "GATEWAY_PORT": str(port),
        "EVENT_SPOOL_PATH": f"{settings.spool_path}-{port}",  # each process its own spool
        "GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_KEY_CACHE_TTL_S": str(KEY_CACHE_TTL_S),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "llmops_gateway"], env=env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _healthy(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_limits_and_revocation_hold_across_two_gateway_processes(
    service_settings: SettingsFactory,
) -> None:
    settings = service_settings(
        GatewaySettings, admin_key=ADMIN_KEY, key_cache_ttl_s=KEY_CACHE_TTL_S
    )
    with _gateway_process(settings, free_port()) as other_url:
        async with (
            serving(create_gateway(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as a,
            httpx.AsyncClient(base_url=other_url, timeout=30) as b,
        ):
            await wait_until(lambda: _healthy(b), timeout=120, what="the second gateway")
            limited = await create_api_key(a, ADMIN_KEY, tenant="acme", requests_per_minute=3)
            # The window is the UTC minute: keep the four calls inside one.
            await wait_until(lambda: time.time() % 60 < 40, timeout=25, what="a fresh minute")

            statuses = [
                (await gw.get("/v1/me", headers=bearer(limited))).status_code for gw in (a, b, a)
            ]
            assert statuses == [200, 200, 200]
            for gw in (b, a):
                refused = await gw.get("/v1/me", headers=bearer(limited))
                assert refused.status_code == 429
                error = refused.json()["error"]
                assert (error["type"], error["code"]) == ("rate_limit_error", "rpm_exceeded")
                retry_after = int(refused.headers["Retry-After"])
                assert 1 <= retry_after <= 60
                assert f"retry in {retry_after} s" in error["message"]

            revocable = await create_api_key(a, ADMIN_KEY, tenant="acme")
            assert (await b.get("/v1/me", headers=bearer(revocable))).status_code == 200
            await a.delete(f"/v1/admin/keys/{_key_id(revocable)}", headers=bearer(ADMIN_KEY))

            async def refused_by_b() -> bool:
                return (await b.get("/v1/me", headers=bearer(revocable))).status_code == 401

            started = time.monotonic()
            await wait_until(refused_by_b, timeout=10, what="the revocation to reach B")
            assert time.monotonic() - started <= KEY_CACHE_TTL_S + 2


def _key_id(secret: str) -> str:
    return key_id_for(secret_hash(secret))


async def test_token_leases_claimed_concurrently_by_two_replicas_never_exceed_the_limit(
    mongo_url: str, mongo_database: str
) -> None:
    """Two guards with their own MongoDB clients: nothing shared but the database."""
    clients: list[AsyncMongoClient[MongoDocument]] = [AsyncMongoClient(mongo_url) for _ in "ab"]
    guards = []
    for client in clients:
        store = MongoLeaseStore()
        store.bind(client[mongo_database])
        guards.append(QuotaGuard(store))
    limit = 300  # a slot is 6 tokens
    caller = Caller(key_id="key-tpm", tenant="acme", role=Role.APP, tokens_per_minute=limit)
    await wait_until(lambda: time.time() % 60 < 45, timeout=20, what="a fresh minute")

    async def call(guard: QuotaGuard) -> int:
        try:
            admission = await guard.admit(caller, 5)
        except QuotaExceeded:
            return 0
        await admission.settle(5)
        return 5

    try:
        used = await asyncio.gather(*(call(guards[n % 2]) for n in range(100)))
    finally:
        for client in clients:
            await client.close()
    assert limit - 2 * slot_size(limit) <= sum(used) <= limit


async def test_the_keys_command_creates_lists_and_revokes(
    gateway: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--url", str(gateway.base_url), "--api-key", ADMIN_KEY]

    async def run(*argv: str) -> tuple[int, str, str]:
        status = await asyncio.to_thread(cli_main, list(argv))
        out, err = capsys.readouterr()
        return status, out, err

    status, secret, err = await run(
        "keys", "create", "--name", "ops bot", "--tenant", "acme", "--rpm", "60", *url
    )
    assert status == 0, err
    secret = secret.strip()
    me = await gateway.get("/v1/me", headers=bearer(secret))
    key_id = me.json()["key_id"]
    assert f"created {key_id} (ops bot): tenant acme, role app" in err

    status, out, _ = await run("keys", "list", "--tenant", "acme", *url)
    assert status == 0
    assert key_id in out
    assert secret not in out

    status, out, _ = await run("keys", "revoke", key_id, *url)
    assert (status, out.strip()) == (0, f"revoked {key_id} (ops bot, tenant acme)")
    status, _, err = await run("keys", "list", "--url", str(gateway.base_url), "--api-key", secret)
    assert status == 1
    assert "revoked at" in err
