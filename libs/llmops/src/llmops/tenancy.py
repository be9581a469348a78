"""Which tenant a request acts for.

Internal calls between services name the tenant in one header. The gateway is the only
public door: it takes the tenant from the caller's API key and sets the header on its
calls to the services behind it, which trust it; a header a client sends to the gateway
is ignored. Internal services must therefore not be reachable from outside.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

TENANT_HEADER = "X-LLMOps-Tenant"
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_TENANT = "default"

TenantId = Annotated[
    str,
    Header(
        alias=TENANT_HEADER,
        pattern=TENANT_PATTERN,
        description="Tenant the request acts for (letters, digits, `_.-`, at most 64).",
    ),
]
"""FastAPI parameter: the tenant header, validated (`tenant: TenantId = DEFAULT_TENANT`)."""
