"""Model routing: least-outstanding balancing, fallbacks in order, the default backend."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmops_gateway.routing import Price, Router, RouteTable


def _table() -> RouteTable:
    return RouteTable.model_validate(
        {
            "routes": {
                "chat": {
                    "backends": [
                        {"url": "http://a:1/v1", "model": "big"},
                        {"url": "http://b:1/v1", "model": "big"},
                    ],
                    "fallbacks": ["small"],
                    "price": {"prompt_per_1k": 0.5, "completion_per_1k": 1.5},
                },
                "small": {"backends": [{"url": "http://c:1/v1"}]},
            }
        }
    )


def test_the_least_busy_replica_comes_first_then_the_fallback() -> None:
    router = Router(_table())
    first, second, fallback = list(router.attempts("chat"))
    first.outstanding = 3
    busy_first = list(router.attempts("chat"))
    assert busy_first[0] is second
    assert busy_first[1] is first
    assert busy_first[2] is fallback
    assert fallback.alias == "small"
    assert fallback.model == "small"


def test_equally_idle_replicas_share_the_load() -> None:
    router = Router(_table())
    leaders = {next(router.attempts("chat")).url for _ in range(4)}
    assert leaders == {"http://a:1/v1", "http://b:1/v1"}


def test_unknown_aliases_go_to_the_default_backend_or_nowhere() -> None:
    assert Router(_table()).route("llama") is None
    assert list(Router(_table()).attempts("llama")) == []
    router = Router(_table(), default_url="http://inference:8004/v1", max_default_aliases=2)
    (backend,) = router.attempts("llama")
    assert (backend.url, backend.model) == ("http://inference:8004/v1", "llama")
    for name in ("a", "b", "c"):
        assert router.route(name) is not None
    assert len(router._defaults) == 2  # bounded: names come from clients


def test_a_fallback_to_an_unknown_alias_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown aliases"):
        RouteTable.model_validate(
            {"routes": {"chat": {"backends": [{"url": "http://a/v1"}], "fallbacks": ["nope"]}}}
        )


def test_cost_uses_the_price_per_thousand_tokens() -> None:
    assert Price(prompt_per_1k=0.5, completion_per_1k=1.5).cost(2000, 1000) == pytest.approx(2.5)
