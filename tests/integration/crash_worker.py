"""A consumer process for the crash test: writes each event once, counting deliveries.

With STALL_AFTER_WRITE=<subject> it stops after writing that event, before its offset is
committed, and waits to be killed: the test then SIGKILLs it at exactly that point.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from llmops.bus import EventBus
from llmops.events.catalog import CONTRACTS, Topic
from llmops.events.envelope import Envelope
from llmops.settings import ServiceSettings, load_settings
from llmops.storage import insert_once, mongo_client
from llmops.telemetry import ServiceMetrics, configure_logging


async def main() -> None:
    settings = load_settings(ServiceSettings)
    configure_logging("crash-worker", "INFO")
    stall_after = os.environ.get("STALL_AFTER_WRITE")
    mongo = mongo_client(settings)
    db = mongo[settings.mongodb_database]
    bus = EventBus(settings, tracer_provider=TracerProvider(), metrics=ServiceMetrics("worker"))

    async def record_feedback(event: Envelope[Any]) -> None:
        await db.deliveries.update_one({"_id": event.id}, {"$inc": {"count": 1}}, upsert=True)
        await insert_once(db.feedback, event.id, {"subject": event.subject})
        if event.subject == stall_after:
            await db.markers.insert_one({"_id": "stalled", "subject": event.subject})
            await asyncio.Event().wait()  # never returns: the offset stays uncommitted

    bus.subscribe(CONTRACTS[Topic.FEEDBACK_EVENTS], record_feedback)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await bus.start()
    await db.markers.insert_one({"_id": f"started-{os.getpid()}"})
    await stop.wait()
    await bus.stop()
    await mongo.close()


if __name__ == "__main__":
    asyncio.run(main())
