"""Per-key quotas that hold across gateway replicas: requests and tokens per minute, tokens
per UTC day.

Shared state lives in MongoDB as leases. A window's allowance (600 requests in minute
29,312,817, say) is cut into numbered slots, and a replica claims a slot by inserting
the document `_id = "<key>:<meter>:<window>:<slot>"`. The unique `_id` makes a claim
atomic on MongoDB and on FerretDB alike (FerretDB's `$inc` loses updates under
concurrency), so however many replicas claim at once, the slots handed out never add up
to more than the limit. A replica serves requests from the slots it holds, in memory;
it goes back to MongoDB only when they run out. A slot is 1/50 of the limit, and 1 when
the limit is under 100, so small limits are exact to the request and a large one costs
one round trip per 2% of the allowance. Unused slots are not handed back: a key at its
limit may be refused up to (replicas x slot) short of it in a window, never let past it.

Windows are fixed (the UTC minute, the UTC day) and `Retry-After` is the time until the
window ends. Lease documents carry `expires_at`; `sweep_expired_leases` deletes old ones.
See docs/adr/0008-gateway-keys-and-quotas.md.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from llmops.llm.errors import ApiError
from llmops.service import LateBound
from llmops.storage import MongoDocument
from llmops.telemetry import get_logger
from llmops_gateway.api_keys import Caller

_log = get_logger(__name__)

COLLECTION = "quota_leases"
SLOTS_PER_WINDOW = 50
_DUPLICATE_KEY = 11000
_EXPIRY_GRACE_S = 120


@dataclass(frozen=True, slots=True)
class Meter:
    """One kind of limit: what it counts, over which window, and the error code past it."""

    name: str
    window_s: int
    code: str
    unit: str

    def window(self, now: float) -> int:
        return int(now // self.window_s)

    def seconds_left(self, now: float) -> int:
        """Whole seconds until the current window ends (at least 1): the `Retry-After`."""
        return max(1, math.ceil((self.window(now) + 1) * self.window_s - now))


REQUESTS_PER_MINUTE = Meter("rpm", 60, "rpm_exceeded", "requests per minute")
TOKENS_PER_MINUTE = Meter("tpm", 60, "tpm_exceeded", "tokens per minute")
TOKENS_PER_DAY = Meter("tpd", 86_400, "daily_budget_exceeded", "tokens per day")


def slot_size(limit: int) -> int:
    """How much of a window's allowance one claim takes: 1/50 of it, at least 1."""
    return max(1, limit // SLOTS_PER_WINDOW)


def slot_count(limit: int) -> int:
    return -(-limit // slot_size(limit))


def slot_amount(limit: int, slot: int) -> int:
    """What slot number `slot` is worth; the last one holds the remainder."""
    size = slot_size(limit)
    return max(0, min(size, limit - slot * size))


class QuotaExceeded(ApiError):
    """429 naming the limit (`code`) and, when waiting helps, when to retry (`Retry-After`)."""

    def __init__(self, meter: Meter, message: str, retry_after_s: int | None) -> None:
        headers = {} if retry_after_s is None else {"Retry-After": str(retry_after_s)}
        super().__init__(429, message, code=meter.code, headers=headers)
        self.meter = meter
        self.retry_after_s = retry_after_s


class LeaseStore(Protocol):
    """Where replicas claim slots. A slot is claimed once, by whoever inserts it first."""

    async def claim(self, prefix: str, slots: range, expires_at: datetime) -> list[int]:
        """Claim `slots` of the window `prefix`; returns those this call got."""

    async def is_claimed(self, prefix: str, slot: int) -> bool: ...


class MongoLeaseStore:
    """Slots as documents of `quota_leases`, claimed by insert (unique `_id`)."""

    def __init__(self) -> None:
        self._leases: LateBound[AsyncCollection[MongoDocument]] = LateBound("the quota store")

    def bind(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._leases.set(db[COLLECTION])

    async def create_indexes(self) -> None:
        await self._leases.get().create_index("expires_at")

    async def claim(self, prefix: str, slots: range, expires_at: datetime) -> list[int]:
        documents = [{"_id": f"{prefix}:{slot}", "expires_at": expires_at} for slot in slots]
        try:
            await self._leases.get().insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise
            lost = {slots[error["index"]] for error in errors}
            return [slot for slot in slots if slot not in lost]
        return list(slots)

    async def is_claimed(self, prefix: str, slot: int) -> bool:
        found = await self._leases.get().find_one({"_id": f"{prefix}:{slot}"}, {"_id": 1})
        return found is not None

    async def sweep(self, now: datetime) -> int:
        """Delete leases of windows that are over; returns how many."""
        result = await self._leases.get().delete_many({"expires_at": {"$lt": now}})
        return result.deleted_count


class Allowance:
    """What this replica holds of one key's limit on one meter, in the current window.

    `held` is claimed and not yet used; it goes negative when a call used more tokens
    than it reserved and no slot was left to cover them (the key then waits for the
    next window). Requests of one replica share the claims; one claim runs at a time.
    """

    def __init__(self, store: LeaseStore, meter: Meter, key_id: str, limit: int) -> None:
        self.meter = meter
        self.key_id = key_id
        self.limit = limit
        self.window = -1
        self.held = 0
        self.next_slot = 0
        self.exhausted = False
        self._store = store
        self._claiming = asyncio.Lock()

    async def take(self, amount: int, window: int) -> bool:
        """Use `amount` of the window's allowance, claiming slots when needed."""
        self._roll(window)
        if self.held >= amount:
            self.held -= amount
            return True
        if self.exhausted:
            return False
        async with self._claiming:
            await self._claim_until(amount)
            if self.held >= amount:
                self.held -= amount
                return True
            return False

    def give_back(self, amount: int, window: int) -> None:
        """Return what was taken and not used (kept by this replica, for its window)."""
        if window == self.window:
            self.held += amount

    async def charge(self, amount: int, window: int) -> None:
        """Count `amount` already used beyond what was taken; never refuses."""
        self._roll(window)
        self.held -= amount
        if self.held < 0 and not self.exhausted:
            async with self._claiming:
                await self._claim_until(0)

    def _roll(self, window: int) -> None:
        if window > self.window:
            self.window, self.held, self.next_slot, self.exhausted = window, 0, 0, False

    async def _claim_until(self, target: int) -> None:
        count = slot_count(self.limit)
        size = slot_size(self.limit)
        window = self.window
        prefix = f"{self.key_id}:{self.meter.name}:{window}"
        expires_at = datetime.fromtimestamp(
            (window + 1) * self.meter.window_s + _EXPIRY_GRACE_S, UTC
        )
        while self.held < target and self.next_slot < count:
            wanted = min(count - self.next_slot, -(-(target - self.held) // size))
            slots = range(self.next_slot, self.next_slot + wanted)
            claimed = await self._store.claim(prefix, slots, expires_at)
            if self.window != window:  # a new window began meanwhile: these slots are over
                return
            self.held += sum(slot_amount(self.limit, slot) for slot in claimed)
            self.next_slot = slots.stop
            if slots[-1] not in claimed:  # other replicas are ahead: skip what they hold
                first_free = await self._first_free(prefix, slots[-1], count)
                if self.window != window:
                    return
                self.next_slot = first_free
        self.exhausted = self.next_slot >= count

    async def _first_free(self, prefix: str, taken: int, count: int) -> int:
        """The first unclaimed slot after `taken`, in O(log n) reads: slots fill in order."""
        low, step = taken, 1
        high = low + step
        while high < count and await self._store.is_claimed(prefix, high):
            low, step = high, step * 2
            high = low + step
        high = min(high, count)
        while high - low > 1:
            middle = (low + high) // 2
            if await self._store.is_claimed(prefix, middle):
                low = middle
            else:
                high = middle
        return high


class Admission:
    """A call let in with an estimate of its tokens; `settle` charges what it really used."""

    def __init__(
        self,
        taken: list[tuple[Allowance, int]],
        reserved_tokens: int,
        clock: Callable[[], float],
    ) -> None:
        self._taken = taken
        self.reserved_tokens = reserved_tokens
        self._clock = clock
        self._settled = False

    async def settle(self, tokens: int) -> None:
        """Charge the real token count: the difference to the estimate is charged or returned.

        Call it once, after the call (also for failed calls: `settle(0)`); later calls do
        nothing.
        """
        if self.settle_returning(tokens):
            return
        self._settled = True
        beyond = tokens - self.reserved_tokens  # > 0, or settle_returning settled it
        now = self._clock()
        for allowance, _ in self._taken:
            await allowance.charge(beyond, allowance.meter.window(now))

    def settle_returning(self, tokens: int) -> bool:
        """Settle at once when the call used no more than its estimate (the common case:
        the estimate counts the whole output limit), which only gives tokens back and
        needs no lease. False when more must be charged: then `await settle(tokens)`."""
        if self._settled:
            return True
        if tokens > self.reserved_tokens:
            return False
        self._settled = True
        for allowance, window in self._taken:
            allowance.give_back(self.reserved_tokens - tokens, window)
        return True


class QuotaGuard:
    """Admits calls within their key's limits, with state shared by every replica."""

    def __init__(self, store: LeaseStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._allowances: dict[tuple[str, str], Allowance] = {}

    async def admit_request(self, caller: Caller) -> None:
        """Count one request against the key's requests per minute, or raise 429."""
        if caller.requests_per_minute is not None:
            await self._take(caller, [(REQUESTS_PER_MINUTE, caller.requests_per_minute)], 1)

    async def admit(self, caller: Caller, estimated_tokens: int) -> Admission:
        """Reserve the call's estimated tokens (per minute and per day), or raise 429.

        The request itself was counted when the caller was authenticated.
        """
        meters = [
            (meter, limit)
            for meter, limit in (
                (TOKENS_PER_DAY, caller.tokens_per_day),
                (TOKENS_PER_MINUTE, caller.tokens_per_minute),
            )
            if limit is not None
        ]
        reserved = max(0, estimated_tokens)
        taken = await self._take(caller, meters, reserved) if meters else []
        return Admission(taken, reserved, self._clock)

    async def _take(
        self, caller: Caller, meters: list[tuple[Meter, int]], amount: int
    ) -> list[tuple[Allowance, int]]:
        """Take `amount` on every meter, or on none (what was taken is given back)."""
        now = self._clock()
        taken: list[tuple[Allowance, int]] = []
        try:
            for meter, limit in meters:
                allowance = self._allowance(caller.key_id, meter, limit)
                window = meter.window(now)
                if amount > limit:
                    message = (
                        f"this request needs {amount} {meter.unit.split()[0]}, more than the "
                        f"key's whole limit of {limit} {meter.unit}"
                    )
                    raise QuotaExceeded(meter, message, retry_after_s=None)
                try:
                    admitted = await allowance.take(amount, window)
                except PyMongoError as exc:
                    msg = "the quota store is unreachable; retry shortly"
                    raise ApiError(503, msg, code="quota_store_unavailable") from exc
                if not admitted:
                    wait = meter.seconds_left(now)
                    message = (
                        f"rate limit reached: {limit} {meter.unit} for this key; retry in {wait} s"
                    )
                    raise QuotaExceeded(meter, message, retry_after_s=wait)
                taken.append((allowance, window))
        except ApiError:
            for allowance, window in taken:
                allowance.give_back(amount, window)
            raise
        return taken

    def _allowance(self, key_id: str, meter: Meter, limit: int) -> Allowance:
        allowance = self._allowances.get((key_id, meter.name))
        if allowance is None or allowance.limit != limit:
            allowance = Allowance(self._store, meter, key_id, limit)
            self._allowances[(key_id, meter.name)] = allowance
        return allowance


async def sweep_expired_leases(store: MongoLeaseStore, *, interval_s: float = 300.0) -> None:
    """Delete the leases of past windows every `interval_s`, until cancelled."""
    while True:
        try:
            deleted = await store.sweep(datetime.now(UTC))
        except PyMongoError as exc:
            _log.warning("could not delete expired quota leases", error=repr(exc)[:200])
        else:
            if deleted:
                _log.debug("expired quota leases deleted", count=deleted)
        await asyncio.sleep(interval_s)
