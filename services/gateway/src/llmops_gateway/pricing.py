"""What a call cost: the route's price, or the one the backend publishes for its model.

The inference service's model registry holds prices and publishes them in its model
cards (`pricing.prompt_per_1k_tokens`, `pricing.completion_per_1k_tokens`), so a model
served through the default route is priced without repeating its price in the gateway.
Cards are cached per backend and model; a backend without a card prices at 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from llmops.telemetry import get_logger
from llmops_gateway.routing import Backend, Price

_log = get_logger(__name__)
_FREE = Price()


class PriceBook:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._ttl_s = ttl_s
        self._clock = clock
        self._cards: dict[tuple[str, str], tuple[Price, float]] = {}

    async def price(self, backend: Backend) -> Price:
        """The price of a call on `backend`; never raises (unknown: free, logged once a TTL)."""
        if backend.route.price is not None:
            return backend.route.price
        key = (backend.url, backend.model)
        cached = self._cards.get(key)
        now = self._clock()
        if cached is not None and cached[1] > now:
            return cached[0]
        price = await self._published(backend)
        self._cards[key] = (price, now + self._ttl_s)
        return price

    async def _published(self, backend: Backend) -> Price:
        try:
            response = await self._http.get(f"{backend.url}/models/{backend.model}", timeout=2.0)
            pricing: Any = response.json().get("pricing") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            _log.info("no published price", backend=backend.served_model, error=repr(exc)[:200])
            return _FREE
        if not isinstance(pricing, dict):
            return _FREE
        return Price(
            prompt_per_1k=float(pricing.get("prompt_per_1k_tokens") or 0.0),
            completion_per_1k=float(pricing.get("completion_per_1k_tokens") or 0.0),
        )
