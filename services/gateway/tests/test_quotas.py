"""Quota leases: slot arithmetic, exactness across replicas, windows, settling tokens.

Two `QuotaGuard`s over one in-memory slot store stand for two gateway replicas; the
real MongoDB store is exercised in tests/integration/test_gateway_keys.py.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from llmops_gateway.api_keys import Caller, Role
from llmops_gateway.quotas import (
    REQUESTS_PER_MINUTE,
    TOKENS_PER_DAY,
    QuotaExceeded,
    QuotaGuard,
    slot_amount,
    slot_count,
    slot_size,
)

T0 = 1_800_000_000.0  # a minute boundary (divisible by 60)


class SlotStore:
    """Slots claimed once each, like unique `_id`s; counts the round trips."""

    def __init__(self) -> None:
        self.claimed: set[str] = set()
        self.round_trips = 0

    async def claim(self, prefix: str, slots: range, expires_at: datetime) -> list[int]:
        self.round_trips += 1
        got = [slot for slot in slots if f"{prefix}:{slot}" not in self.claimed]
        self.claimed.update(f"{prefix}:{slot}" for slot in got)
        return got

    async def is_claimed(self, prefix: str, slot: int) -> bool:
        self.round_trips += 1
        return f"{prefix}:{slot}" in self.claimed


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _caller(
    *,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    tokens_per_day: int | None = None,
) -> Caller:
    return Caller(
        key_id="key-1",
        tenant="acme",
        role=Role.APP,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        tokens_per_day=tokens_per_day,
    )


@pytest.mark.parametrize("limit", [1, 2, 7, 99, 100, 101, 149, 1_000, 12_345, 1_000_000])
def test_slots_add_up_to_the_limit_exactly(limit: int) -> None:
    amounts = [slot_amount(limit, slot) for slot in range(slot_count(limit))]
    assert sum(amounts) == limit
    assert all(amount > 0 for amount in amounts)
    assert slot_size(limit) == (1 if limit < 100 else limit // 50)


async def test_two_replicas_never_admit_more_than_the_limit_together() -> None:
    store, clock = SlotStore(), Clock()
    replicas = [QuotaGuard(store, clock=clock), QuotaGuard(store, clock=clock)]
    caller = _caller(requests_per_minute=7)
    admitted, refusals = 0, []
    for n in range(20):
        try:
            await replicas[n % 2].admit_request(caller)
            admitted += 1
        except QuotaExceeded as refused:
            refusals.append((refused.code, refused.headers["Retry-After"]))
    assert admitted == 7  # a small limit is exact: one slot per request
    assert refusals == [("rpm_exceeded", "60")] * 13


async def test_a_large_limit_is_served_from_leases_with_few_round_trips() -> None:
    store, clock = SlotStore(), Clock()
    replicas = [QuotaGuard(store, clock=clock), QuotaGuard(store, clock=clock)]
    caller = _caller(requests_per_minute=10_000)
    for n in range(5_000):
        await replicas[n % 2].admit_request(caller)
    # A slot is 200 requests: 25 claims, each of a few round trips when the replicas race.
    assert store.round_trips <= 100


async def test_a_saturated_key_gets_its_limit_minus_at_most_one_slot_per_replica() -> None:
    store, clock = SlotStore(), Clock()
    replicas = [QuotaGuard(store, clock=clock) for _ in range(3)]
    caller = _caller(requests_per_minute=1_000)
    admitted = 0
    for n in range(1_500):
        try:
            await replicas[n % 3].admit_request(caller)
            admitted += 1
        except QuotaExceeded:
            pass
    assert 1_000 - 3 * slot_size(1_000) < admitted <= 1_000


async def test_the_allowance_comes_back_with_the_next_window() -> None:
    store, clock = SlotStore(), Clock(T0 + 45)
    guard = QuotaGuard(store, clock=clock)
    caller = _caller(requests_per_minute=2)
    await guard.admit_request(caller)
    await guard.admit_request(caller)
    with pytest.raises(QuotaExceeded) as refused:
        await guard.admit_request(caller)
    assert refused.value.retry_after_s == 15
    clock.now = T0 + 60
    await guard.admit_request(caller)


async def test_tokens_reserved_then_settled_to_the_real_count() -> None:
    store, clock = SlotStore(), Clock()
    guard = QuotaGuard(store, clock=clock)
    caller = _caller(tokens_per_minute=50)
    admission = await guard.admit(caller, 40)
    with pytest.raises(QuotaExceeded) as refused:
        await guard.admit(caller, 20)  # 40 of 50 reserved
    assert refused.value.code == "tpm_exceeded"
    assert admission.settle_returning(10)  # 30 of the estimate come back, no lease needed
    await admission.settle(10)  # settled already: nothing more comes back
    second = await guard.admit(caller, 20)
    assert not second.settle_returning(35)  # more than reserved: only `settle` charges it
    await second.settle(35)  # used 15 more than reserved: 45 of 50
    with pytest.raises(QuotaExceeded):
        await guard.admit(caller, 10)
    await (await guard.admit(caller, 5)).settle(5)


async def test_tokens_beyond_every_slot_leave_the_key_refused_until_the_window_ends() -> None:
    store, clock = SlotStore(), Clock()
    guard = QuotaGuard(store, clock=clock)
    caller = _caller(tokens_per_minute=50)
    await (await guard.admit(caller, 10)).settle(80)  # the answer was longer than estimated
    with pytest.raises(QuotaExceeded):
        await guard.admit(caller, 0)  # in debt: even a call estimated at 0 waits
    clock.now = T0 + 60
    await guard.admit(caller, 50)


async def test_the_daily_budget_names_itself_and_the_wait_until_utc_midnight() -> None:
    store, clock = SlotStore(), Clock(T0 + 3_600)
    guard = QuotaGuard(store, clock=clock)
    caller = _caller(tokens_per_day=1_000, tokens_per_minute=10_000)
    await guard.admit(caller, 900)
    with pytest.raises(QuotaExceeded) as refused:
        await guard.admit(caller, 200)
    assert refused.value.code == "daily_budget_exceeded"
    assert refused.value.retry_after_s == TOKENS_PER_DAY.seconds_left(clock.now)
    assert 0 < refused.value.retry_after_s <= 86_400


async def test_a_refusal_on_one_limit_gives_back_what_the_others_took() -> None:
    store, clock = SlotStore(), Clock()
    guard = QuotaGuard(store, clock=clock)
    caller = _caller(tokens_per_day=70, tokens_per_minute=30)
    with pytest.raises(QuotaExceeded) as refused:
        await guard.admit(caller, 40)  # fits the day, never the minute
    assert refused.value.code == "tpm_exceeded"
    assert refused.value.retry_after_s is None  # retrying would not help
    await guard.admit(caller, 30)
    clock.now = T0 + 60
    await guard.admit(caller, 30)  # 60 of the day's 70: the refused 40 came back
    clock.now = T0 + 120
    with pytest.raises(QuotaExceeded) as refused:
        await guard.admit(caller, 30)
    assert refused.value.code == "daily_budget_exceeded"


async def test_a_key_without_limits_never_touches_the_store() -> None:
    store = SlotStore()
    guard = QuotaGuard(store)
    caller = _caller()
    for _ in range(100):
        await guard.admit_request(caller)
        await (await guard.admit(caller, 10_000)).settle(20_000)
    assert store.round_trips == 0


def test_retry_after_counts_whole_seconds_to_the_end_of_the_window() -> None:
    assert REQUESTS_PER_MINUTE.seconds_left(T0) == 60
    assert REQUESTS_PER_MINUTE.seconds_left(T0 + 59.2) == 1
    assert REQUESTS_PER_MINUTE.seconds_left(T0 + 30.5) == 30
