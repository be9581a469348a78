"""Fixtures for integration tests that need more than the shared broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from private_kafka import PrivateKafka
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase


@pytest.fixture
async def mongo_db(mongo_url: str, mongo_database: str) -> AsyncIterator[AsyncDatabase[Any]]:
    """This test's own database on the shared MongoDB-protocol server."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    yield client[mongo_database]
    await client.close()


@pytest.fixture
async def private_kafka(tmp_path: Path) -> AsyncIterator[PrivateKafka]:
    """A running Kafka broker of this test's own, which it may stop, pause and restart.

    See `private_kafka.PrivateKafka`; removed (SIGTERM, then SIGKILL) after the test.
    """
    broker = PrivateKafka(tmp_path / "private-kafka")
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()
