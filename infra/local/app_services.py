"""The platform's own services as local processes: every ``services/<name>`` package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from infra.local.config import SERVICE_BASE_PORTS, StackConfig
from infra.local.processes import Managed, PortClaim, port_accepts


@dataclass(frozen=True)
class Service:
    """A service package and the HTTP port this stack gives it."""

    name: str
    port: int

    @property
    def module(self) -> str:
        return f"llmops_{self.name.replace('-', '_')}"

    @property
    def port_var(self) -> str:
        return f"{self.name.replace('-', '_').upper()}_PORT"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def discover(config: StackConfig) -> list[Service]:
    """Every ``services/<name>/pyproject.toml``, with its port (base port + LLMOPS_PORT_OFFSET).

    A service without a fixed base port gets the next ports after the known ones, in name order.
    """
    names = sorted(path.parent.name for path in (config.repo / "services").glob("*/pyproject.toml"))
    next_port = max(SERVICE_BASE_PORTS.values()) + 1
    services = []
    for name in names:
        base = SERVICE_BASE_PORTS.get(name)
        if base is None:
            base, next_port = next_port, next_port + 1
        services.append(Service(name=name, port=base + config.port_offset))
    return services


def managed(config: StackConfig, name: str, address: str = "") -> Managed:
    module = Service(name=name, port=0).module
    return Managed(
        name=name,
        home=config.home,
        markers=(f"-m {module}",),
        address=address,
        stop_timeout_s=20.0,
    )


def port_claim(service: Service) -> PortClaim:
    return PortClaim(
        service.port, f"service {service.name}", "LLMOPS_PORT_OFFSET (moves every service port)"
    )


def start_argv(config: StackConfig, service: Service) -> list[str]:
    return [str(config.python), "-m", service.module]


def environment(
    config: StackConfig, service: Service, peers: Sequence[Service] = ()
) -> dict[str, str]:
    """What a service is told about the stack, on top of the caller's environment.

    Where its peers listen comes as `<SERVICE>_<PEER>_URL` (e.g. GATEWAY_PROMPTS_URL),
    the service's own settings prefix, so a port offset moves the calls too.
    """
    prefix = service.port_var.removesuffix("_PORT")
    peer_urls = {
        f"{prefix}_{peer.port_var.removesuffix('_PORT')}_URL": peer.url
        for peer in peers
        if peer.name != service.name
    }
    return {
        **config.infra_env(),
        **config.qdrant_env(),
        **config.storage_env(),
        "LLMOPS_ENV": "development",
        service.port_var: str(service.port),
        # each stack (and each service) spools its undelivered events in its own data dir
        "EVENT_SPOOL_PATH": str(config.data_dir / "spool" / service.name),
        **peer_urls,
        "PYTHONUNBUFFERED": "1",  # log lines reach logs/<name>.log as they happen
    }


def healthy(service: Service, timeout_s: float = 2.0) -> bool:
    """Whether ``GET /healthz`` answers 200."""
    if not port_accepts("127.0.0.1", service.port):
        return False
    try:
        response = httpx.get(f"{service.url}/healthz", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def qdrant_dir(config: StackConfig) -> Path | None:
    """The embedded Qdrant directory services share, or None when QDRANT_URL names a server."""
    return None if config.qdrant_url else config.qdrant_path
