"""`llmops keys`: create, list and revoke the gateway's API keys (needs an admin key).

`create` prints the new secret alone on stdout (it is not shown again), so that
`export LLMOPS_API_KEY=$(llmops keys create --name app --tenant acme)` works; what the
key is goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from llmops.cli.gateway import add_gateway_arguments, gateway_client
from llmops.tenancy import DEFAULT_TENANT

ROLES = ("app", "analyst", "admin")


class ApiKey(BaseModel):
    """A key as the gateway's admin API answers it; only the fields the commands show."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str
    tenant: str
    role: str
    allowed_models: list[str] = []
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    created_at: datetime
    revoked_at: datetime | None = None
    secret: str | None = None


class _KeyList(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    keys: list[ApiKey]


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `llmops keys` and its subcommands."""
    group = groups.add_parser(
        "keys",
        help="manage the gateway's API keys (admin)",
        description="Create, list and revoke API keys. Calls the gateway's admin API with "
        "an admin key ($LLMOPS_API_KEY; the first one is GATEWAY_ADMIN_KEY).",
    )
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = commands.add_parser(
        "create",
        help="create a key; prints its secret (shown once)",
        description="Create a key for a tenant. Limits left out are unlimited.",
    )
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--tenant", default=DEFAULT_TENANT, help="tenant it acts for")
    create.add_argument("--role", choices=ROLES, default="app", help="default: %(default)s")
    create.add_argument(
        "--model",
        action="append",
        default=[],
        dest="models",
        metavar="MODEL",
        help="a model the key may call (repeatable; default: every model)",
    )
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--tokens-per-day", type=int, help="token budget per UTC day")
    create.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    add_gateway_arguments(create)
    create.set_defaults(handler=_create)

    listing = commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_gateway_arguments(listing)
    listing.set_defaults(handler=_list)

    revoke = commands.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key_id", metavar="KEY_ID")
    add_gateway_arguments(revoke)
    revoke.set_defaults(handler=_revoke)


def _create(args: argparse.Namespace) -> int:
    body = {
        "name": args.name,
        "tenant": args.tenant,
        "role": args.role,
        "allowed_models": args.models,
        "requests_per_minute": args.rpm,
        "tokens_per_minute": args.tpm,
        "tokens_per_day": args.tokens_per_day,
    }
    with gateway_client(args) as client:
        key = client.parse(
            ApiKey, client.request("POST", "/v1/admin/keys", json=body), what="a key"
        )
    if args.json:
        print(key.model_dump_json(indent=2))
        return 0
    print(f"created {key.id} ({key.name}): tenant {key.tenant}, role {key.role}", file=sys.stderr)
    print(key.secret)
    return 0


def _list(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"include_revoked": str(args.all).lower()}
    if args.tenant:
        params["tenant"] = args.tenant
    with gateway_client(args) as client:
        answer = client.request("GET", "/v1/admin/keys", params=params)
        keys = client.parse(_KeyList, answer, what="keys").keys
    if args.json:
        print(json.dumps([key.model_dump(mode="json") for key in keys], indent=2))
        return 0
    print("ID                            TENANT        ROLE     RPM     TPM       PER DAY     NAME")
    for key in keys:
        state = f"  (revoked {key.revoked_at:%Y-%m-%d})" if key.revoked_at else ""
        print(
            f"{key.id:<29} {key.tenant:<13} {key.role:<8} {_limit(key.requests_per_minute):<7} "
            f"{_limit(key.tokens_per_minute):<9} {_limit(key.tokens_per_day):<11} "
            f"{key.name}{state}"
        )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with gateway_client(args) as client:
        answer = client.request("DELETE", f"/v1/admin/keys/{quote(args.key_id, safe='')}")
        key = client.parse(ApiKey, answer, what="the revoked key")
    print(f"revoked {key.id} ({key.name}, tenant {key.tenant})")
    return 0


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)
