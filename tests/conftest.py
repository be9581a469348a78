"""Fixtures shared by the whole suite: real Kafka and MongoDB-protocol server, isolated per test.

`make test` starts both (infra/local/devstack.py with-infra) and exports their addresses.
When they are not reachable the tests fail with that instruction; they never skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from llmops.bus.provision import ensure_topics, topic_specs
from llmops.settings import ServiceSettings
from llmops.testing import SettingsFactory

REPO = Path(__file__).resolve().parents[1]
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")
_NOT_RUNNING = "is not reachable at {}: run the suite with `make test`, which starts it"


@pytest.fixture(scope="session")
async def kafka_bootstrap() -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=5_000)
    try:
        await asyncio.wait_for(admin.start(), timeout=10)
    except Exception as exc:
        pytest.fail(f"Kafka {_NOT_RUNNING.format(KAFKA)} ({exc!r})")
    await admin.close()
    return KAFKA


@pytest.fixture(scope="session")
async def mongo_url() -> str:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        MONGODB_URL, serverSelectionTimeoutMS=5_000
    )
    try:
        await client.admin.command("ping")
    except Exception as exc:
        pytest.fail(f"MongoDB {_NOT_RUNNING.format(MONGODB_URL)} ({exc!r})")
    finally:
        await client.close()
    return MONGODB_URL


@pytest.fixture
def topic_prefix() -> str:
    """A random topic-name prefix: each test gets its own topics."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def topics(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[str]:
    """Every catalog topic (and its .dlq) under this test's prefix, one partition each.

    Deleted afterwards: a broker that outlives the run (the dev stack's) would otherwise
    gather thousands of partitions and run out of heap.
    """
    config = {"defaults": {"partitions": 1, "retention_hours": 1, "dlq_retention_hours": 1}}
    specs = topic_specs(config, prefix=topic_prefix)
    await ensure_topics(kafka_bootstrap, specs)
    yield topic_prefix
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.delete_topics([spec.name for spec in specs])
    except Exception as exc:  # cleanup only: the next run must not fail for it
        warnings.warn(f"could not delete the test's topics: {exc!r}", stacklevel=1)
    finally:
        await admin.close()


@pytest.fixture
async def mongo_database(mongo_url: str) -> AsyncIterator[str]:
    """A database name of this test's own, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    await client.drop_database(name)
    await client.close()


@pytest.fixture
def service_settings(
    kafka_bootstrap: str, mongo_url: str, topics: str, mongo_database: str, tmp_path: Path
) -> SettingsFactory:
    """Build settings of any service type pointed at this test's topics and database."""

    def build(settings_type: type[ServiceSettings] = ServiceSettings, **values: Any) -> Any:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": topics,
            "MONGODB_URL": mongo_url,
            "MONGODB_DATABASE": mongo_database,
            "QDRANT_PATH": str(tmp_path / "qdrant"),
            "CONSUMER_RETRY_BACKOFF_S": "0.05",
            # each service built in a test spools its undelivered events apart
            "EVENT_SPOOL_PATH": str(tmp_path / "spool" / uuid.uuid4().hex[:8]),
        }
        return settings_type.model_validate({**env, **values})

    return build  # type: ignore[return-value]  # the Protocol's overloads describe it
