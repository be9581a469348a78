"""The local dev stack, driven as the README says: `make up`, `make status`, `make down`.

Real processes only: Kafka (KRaft), FerretDB and every service, on non-default ports in a
LLMOPS_HOME of the test's own, so a developer's running stack is never touched.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import MongoClient

from llmops.testing import read_topic

if TYPE_CHECKING:
    from tests.e2e.conftest import DevStackFactory

pytestmark = pytest.mark.e2e


async def _kafka_round_trip(bootstrap: str) -> tuple[set[str], bytes]:
    """Create a topic, produce one record and read it back; also return the broker's topics."""
    topic = f"e2e.devstack.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"ping", key=b"devstack")
    finally:
        await producer.stop()
    records = await read_topic(bootstrap, topic, count=1, timeout=30)
    value: bytes = records[0].value
    return topics, value


def _mongo_round_trip(url: str) -> dict[str, Any] | None:
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=10_000)
    try:
        collection = client["e2e_devstack"]["checks"]
        marker = uuid.uuid4().hex
        collection.insert_one({"_id": marker, "ok": True})
        return collection.find_one({"_id": marker})
    finally:
        client.close()


def _row(status_output: str, component: str) -> str:
    rows = [line for line in status_output.splitlines() if line.split()[:1] == [component]]
    assert len(rows) == 1, status_output
    return rows[0]


@pytest.mark.timeout(420)
def test_make_up_serves_every_service_and_make_down_leaves_nothing(
    make_devstack: DevStackFactory,
) -> None:
    stack = make_devstack(kafka=19092, kafka_controller=19093, mongo=27117, service_offset=100)
    services = stack.services()
    assert services, "no services/<name>/pyproject.toml found"

    up = stack.make("up", timeout_s=360)
    assert up.returncode == 0, stack.describe(up)

    # Every service answers where the ready block says it does.
    for name, port in services.items():
        url = f"http://127.0.0.1:{port}"
        assert url in up.stdout, f"{name} missing from the ready block:\n{up.stdout}"
        for path in ("/healthz", "/metrics"):
            response = httpx.get(url + path, timeout=10)
            assert response.status_code == 200, f"{name} {path}: {response.status_code}"

    # Kafka takes a topic, a record and gives it back; the catalog topics were created.
    topics, value = asyncio.run(_kafka_round_trip(stack.kafka_bootstrap))
    assert value == b"ping"
    assert any(topic.endswith(".dlq") for topic in topics), f"no catalog topics: {topics}"

    # FerretDB stores and returns a document.
    assert _mongo_round_trip(stack.mongodb_url) is not None

    status = stack.make("status")
    assert status.returncode == 0, stack.describe(status)
    for component in ["kafka", "ferretdb", *services]:
        assert " running " in _row(status.stdout, component), status.stdout

    pids = stack.pids()
    assert set(pids) == {"kafka", "ferretdb", *services}
    assert all(stack.is_alive(pid) for pid in pids.values())
    assert set(pids.values()) <= stack.processes()

    down = stack.make("down", timeout_s=120)
    assert down.returncode == 0, stack.describe(down)
    assert not [name for name, pid in pids.items() if stack.is_alive(pid)]
    assert stack.processes() == set(), "processes of the stack outlived `make down`"
    assert stack.pids() == {}
    stack.wait_ports_free()

    # Idempotent: a second `down` has nothing to do and still succeeds.
    again = stack.make("down")
    assert again.returncode == 0, stack.describe(again)


@pytest.mark.timeout(240)
def test_up_infra_only_twice_starts_nothing_new(make_devstack: DevStackFactory) -> None:
    stack = make_devstack(kafka=19192, kafka_controller=19193, mongo=27217, service_offset=200)

    first = stack.cli("up", "--infra-only")
    assert first.returncode == 0, stack.describe(first)
    pids = stack.pids()
    assert set(pids) == {"kafka", "ferretdb"}
    assert stack.processes() == set(pids.values())

    second = stack.cli("up", "--infra-only")
    assert second.returncode == 0, stack.describe(second)
    assert f"kafka: already running (pid {pids['kafka']})" in second.stdout
    assert f"ferretdb: already running (pid {pids['ferretdb']})" in second.stdout
    assert "started (pid" not in second.stdout
    assert stack.pids() == pids
    assert stack.processes() == set(pids.values())

    down = stack.cli("down")
    assert down.returncode == 0, stack.describe(down)
    assert stack.processes() == set()
    stack.wait_ports_free()


@pytest.mark.timeout(240)
def test_with_infra_runs_the_command_and_stops_only_what_it_started(
    make_devstack: DevStackFactory,
) -> None:
    stack = make_devstack(kafka=19292, kafka_controller=19293, mongo=27317, service_offset=300)
    probe = (
        "import os, sys; "
        "print(os.environ['KAFKA_BOOTSTRAP_SERVERS'], os.environ['MONGODB_URL']); "
        "sys.exit(7)"
    )

    # Nothing running: it starts Kafka and FerretDB, passes CMD's exit code, stops both.
    result = stack.cli("with-infra", "--", sys.executable, "-c", probe)
    assert result.returncode == 7, stack.describe(result)
    assert f"{stack.kafka_bootstrap} {stack.mongodb_url}" in result.stdout
    assert stack.processes() == set()
    assert stack.pids() == {}
    stack.wait_ports_free()

    # Already running: it uses them and leaves them running.
    up = stack.cli("up", "--infra-only")
    assert up.returncode == 0, stack.describe(up)
    pids = stack.pids()
    result = stack.cli("with-infra", "--", sys.executable, "-c", "pass")
    assert result.returncode == 0, stack.describe(result)
    assert stack.pids() == pids
    assert all(stack.is_alive(pid) for pid in pids.values())

    down = stack.cli("down")
    assert down.returncode == 0, stack.describe(down)


@pytest.mark.timeout(120)
def test_taken_port_is_named_and_stale_pid_files_are_cleaned(
    make_devstack: DevStackFactory,
) -> None:
    stack = make_devstack(kafka=19392, kafka_controller=19393, mongo=27417, service_offset=400)

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", stack.ports.mongo))
        squatter.listen()
        result = stack.cli("up", "--infra-only")
    assert result.returncode != 0
    assert str(stack.ports.mongo) in result.stderr
    assert "LLMOPS_MONGO_PORT" in result.stderr
    assert stack.processes() == set(), "nothing may start when a port is taken"

    # A pid file naming a live process that is not the stack's (this test) is never signalled.
    run_dir = stack.home / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "ferretdb.pid").write_text(f"{os.getpid()}\n")
    (run_dir / "gateway.pid").write_text("999999999\n")
    status = stack.cli("status")
    assert status.returncode == 0, stack.describe(status)
    assert "stale pid" in _row(status.stdout, "ferretdb")
    assert "stale pid" in _row(status.stdout, "gateway")

    down = stack.cli("down")
    assert down.returncode == 0, stack.describe(down)
    assert stack.pids() == {}
    assert stack.is_alive(os.getpid())
