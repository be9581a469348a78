"""Alert notifications to a webhook, stored first and retried with backoff until delivered.

A notification is a document in `monitoring_webhook_deliveries` (one per alert transition,
its id the transition's), so a restart, or a second replica, delivers what is pending. A
replica claims a delivery with a conditional update before sending it, so two replicas
never send the same attempt. The receiver gets the `AlertChanged` event as JSON, with
its event id in `Idempotency-Key`: an attempt whose answer was lost is sent again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.periodic import Periodic
from llmops.storage import MongoDocument, insert_once
from llmops.telemetry import get_logger

DELIVERIES = "monitoring_webhook_deliveries"
_CLAIM = timedelta(seconds=30)
_log = get_logger(__name__)


class WebhookNotifier:
    """Delivers stored notifications; `start` runs the delivery loop in the background."""

    def __init__(
        self,
        db: AsyncDatabase[MongoDocument],
        http: httpx.AsyncClient,
        *,
        url: str,
        max_attempts: int,
        backoff_s: float,
        poll_s: float = 0.5,
    ) -> None:
        self._deliveries = db[DELIVERIES]
        self._http = http
        self.url = url
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._rounds = Periodic("alert-webhook", self.deliver_due, poll_s)

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db[DELIVERIES].create_index([("status", ASCENDING), ("next_at", ASCENDING)])

    async def enqueue(self, delivery_id: str, body: dict[str, Any]) -> None:
        """Store a notification to send (once per id)."""
        now = datetime.now(UTC)
        document = {"status": "pending", "attempts": 0, "next_at": now, "body": body}
        await insert_once(self._deliveries, delivery_id, document)

    async def start(self) -> None:
        await self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def deliver_due(self) -> None:
        """Send every notification whose time has come, oldest first."""
        now = datetime.now(UTC)
        due = self._deliveries.find({"status": "pending", "next_at": {"$lte": now}})
        for document in await due.sort("next_at", ASCENDING).to_list(100):
            claimed = await self._deliveries.update_one(
                {"_id": document["_id"], "status": "pending", "next_at": document["next_at"]},
                {"$set": {"next_at": now + _CLAIM}},
            )
            if claimed.modified_count == 1:
                await self._attempt(document)

    async def _attempt(self, document: MongoDocument) -> None:
        attempts = int(document["attempts"]) + 1
        error = None
        try:
            answer = await self._http.post(
                self.url,
                json=document["body"],
                headers={"Idempotency-Key": str(document["_id"])},
                timeout=10.0,
            )
            if answer.is_success:
                await self._deliveries.update_one(
                    {"_id": document["_id"]},
                    {"$set": {"status": "delivered", "attempts": attempts}},
                )
                return
            error = f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            error = repr(exc)
        if attempts >= self.max_attempts:
            update: MongoDocument = {"status": "failed", "attempts": attempts, "error": error}
            _log.error("alert webhook gave up", delivery=document["_id"], error=error)
        else:
            delay = self.backoff_s * 2 ** (attempts - 1)
            next_at = datetime.now(UTC) + timedelta(seconds=delay)
            update = {"attempts": attempts, "next_at": next_at, "error": error}
            _log.warning(
                "alert webhook failed, retrying", delivery=document["_id"], error=error, in_s=delay
            )
        await self._deliveries.update_one({"_id": document["_id"]}, {"$set": update})


__all__ = ["DELIVERIES", "WebhookNotifier"]
