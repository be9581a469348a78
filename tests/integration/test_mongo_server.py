"""The MongoDB-protocol server the suite runs on finds a record by `_id` through its index
and applies bulk updates of any size through `bulk_update`.

The services look records up by `_id` on every event; a server that scans instead makes
each lookup grow with its collection. FerretDB 1.24 (local runs) needs a one-line fix for
this, applied when the dev stack builds it (ADR 0015); MongoDB does it anyway.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pymongo import AsyncMongoClient, UpdateOne

from llmops.storage import UPDATES_PER_COMMAND, bulk_update


async def test_a_lookup_by_id_is_an_index_search(mongo_url: str, mongo_database: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        db = client[mongo_database]
        await db["lookups"].insert_many([{"_id": f"doc-{n}", "n": n} for n in range(50)])
        build = await client.admin.command("buildInfo")
        explained = await db.command(
            "explain", {"find": "lookups", "filter": {"_id": "doc-7"}}, verbosity="queryPlanner"
        )
        found = await db["lookups"].find_one({"_id": "doc-7"})
    finally:
        await client.close()

    assert found == {"_id": "doc-7", "n": 7}
    if "ferretdbVersion" in build:
        assert explained["filterPushdown"] is True
        plan = explained["queryPlanner"]["Plan"]
        assert len(plan) == 1
        assert re.search(r"detail=SEARCH \S+ USING INDEX \S+__id_ ", plan[0]), plan
    else:
        winning = explained["queryPlanner"]["winningPlan"]
        assert winning.get("stage") in {"IDHACK", "EXPRESS_IXSCAN", "CLUSTERED_IXSCAN"}, winning


async def test_bulk_updates_beyond_what_one_ferretdb_command_takes_all_apply(
    mongo_url: str, mongo_database: str
) -> None:
    """FerretDB 1.24 hangs on a command of ~100 updates; `bulk_update` sends fewer."""
    count = 3 * UPDATES_PER_COMMAND + 5
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        records = client[mongo_database]["bulk"]
        await records.insert_many([{"_id": f"doc-{n}", "n": n} for n in range(count)])
        updates = [UpdateOne({"_id": f"doc-{n}"}, {"$set": {"n": -n}}) for n in range(count)]
        await asyncio.wait_for(bulk_update(records, updates), timeout=60)
        stored = {found["_id"]: found["n"] async for found in records.find({})}
    finally:
        await client.close()

    assert stored == {f"doc-{n}": -n for n in range(count)}
