"""Model aliases → backends: least-outstanding-requests balancing, then fallback models.

A client asks for an alias (`support-chat`); the route table names the alias's backends
(inference service replicas or any OpenAI-compatible upstream) and the aliases to fall
back to. `Router.attempts(alias)` yields the backends to try in order: the alias's own
replicas least busy first, then each fallback's. The caller stops at the first success.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops.llm.errors import ApiError


class Price(BaseModel):
    """US dollars per 1,000 tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_per_1k: float = Field(0.0, ge=0)
    completion_per_1k: float = Field(0.0, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.prompt_per_1k + completion_tokens * self.completion_per_1k
        ) / 1000


class BackendSpec(BaseModel):
    """One OpenAI-compatible server that serves the alias (its base URL ends in `/v1`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://", description="Base URL, e.g. http://inference:8004/v1.")
    model: str | None = Field(None, description="Model name upstream; default: the alias.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the upstream's API key, if it needs one."
    )


class RouteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backends: list[BackendSpec] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)
    timeout_s: float = Field(60.0, gt=0, description="Limit for a whole non-streamed call.")
    first_token_timeout_s: float = Field(
        30.0, gt=0, description="Streamed calls: limit until the first event, then between events."
    )
    price: Price | None = Field(
        None,
        description="Price of the alias; unset: the backend's model card says "
        "(`pricing` in `/v1/models/{model}`, as the inference service publishes it).",
    )
    context_length: int | None = Field(None, ge=1)


class RouteTable(BaseModel):
    """The `GATEWAY_MODEL_ROUTES` setting: alias → route."""

    model_config = ConfigDict(frozen=True)

    routes: dict[str, RouteSpec]

    @model_validator(mode="after")
    def _fallbacks_exist(self) -> RouteTable:
        for alias, route in self.routes.items():
            unknown = [name for name in route.fallbacks if name not in self.routes]
            if unknown:
                msg = f"model route {alias!r} falls back to unknown aliases {unknown}"
                raise ValueError(msg)
        return self


@dataclass(eq=False)
class Backend:
    """A live backend: where to send, and how many calls are in flight on it now."""

    alias: str
    url: str
    model: str
    api_key: str | None
    route: RouteSpec
    outstanding: int = 0

    @property
    def served_model(self) -> str:
        """How events name what served the call: `<alias>/<upstream model>@<host>`."""
        host = self.url.split("://", 1)[-1].split("/", 1)[0]
        return f"{self.model}@{host}"


@dataclass
class Router:
    """Chooses backends for an alias; counts outstanding calls per backend.

    Aliases the table does not name go to `default_url` (the inference service) under
    their own name, so a model registered there is servable without a route.
    """

    table: RouteTable
    default_url: str | None = None
    max_default_aliases: int = 1024
    _backends: dict[str, list[Backend]] = field(init=False)
    _defaults: dict[str, RouteSpec] = field(init=False, default_factory=dict)
    _tiebreak: Iterator[int] = field(init=False, default_factory=itertools.count)

    def __post_init__(self) -> None:
        self._backends = {
            alias: _backends(alias, route) for alias, route in self.table.routes.items()
        }

    @property
    def aliases(self) -> list[str]:
        """The aliases the route table names (the default backend may serve more)."""
        return sorted(self.table.routes)

    def route(self, alias: str) -> RouteSpec | None:
        """The alias's route: from the table, else to the default backend, else None."""
        route = self.table.routes.get(alias) or self._defaults.get(alias)
        if route is not None or not self.default_url:
            return route
        if len(self._defaults) >= self.max_default_aliases:
            # Forget the oldest: the table of names clients made up must stay bounded.
            oldest = next(iter(self._defaults))
            del self._defaults[oldest], self._backends[oldest]
        route = RouteSpec(backends=[BackendSpec(url=self.default_url)])
        self._defaults[alias] = route
        self._backends[alias] = _backends(alias, route)
        return route

    def require(self, alias: str) -> RouteSpec:
        """The alias's route, or a 404 that lists the aliases there are."""
        route = self.route(alias)
        if route is None:
            known = ", ".join(self.aliases) or "none configured"
            raise ApiError(
                404,
                f"model {alias!r} does not exist; available models: {known}",
                code="model_not_found",
                param="model",
            )
        return route

    def attempts(self, alias: str) -> Iterator[Backend]:
        """The alias's backends least busy first, then its fallbacks' (each alias once)."""
        route = self.route(alias)
        if route is None:
            return
        seen: set[str] = set()
        for name in [alias, *route.fallbacks]:
            if name in seen:
                continue
            seen.add(name)
            yield from self._least_busy(self._backends[name])

    def _least_busy(self, backends: list[Backend]) -> list[Backend]:
        # Rotate before sorting so that equally idle replicas share the load.
        start = next(self._tiebreak) % len(backends)
        rotated = backends[start:] + backends[:start]
        return sorted(rotated, key=lambda backend: backend.outstanding)


def _backends(alias: str, route: RouteSpec) -> list[Backend]:
    return [
        Backend(
            alias=alias,
            url=spec.url.rstrip("/"),
            model=spec.model or alias,
            api_key=os.environ.get(spec.api_key_env) if spec.api_key_env else None,
            route=route,
        )
        for spec in route.backends
    ]
