"""`llmops-topics ensure` against the broker: topics are created and grown as configured,
whatever other provisioners do at the same time, and a refusal is an error, never a
silent success."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from llmops.bus.provision import ProvisionError, TopicSpec, ensure_topics, main, topic_specs
from llmops.events.catalog import Topic


@pytest.fixture
async def admin(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client; the test's topics (its prefix) are deleted afterwards."""
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        made = [name for name in await client.list_topics() if name.startswith(topic_prefix)]
        if made:
            await client.delete_topics(made)
        await client.close()


async def partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    return {info["topic"]: len(info["partitions"]) for info in await admin.describe_topics(names)}


def specs_with(partitions: int, prefix: str, replication: int = 1) -> list[TopicSpec]:
    config = {
        "defaults": {
            "partitions": partitions,
            "replication_factor": replication,
            "retention_hours": 1,
            "dlq_retention_hours": 1,
        }
    }
    return topic_specs(config, prefix=prefix)


async def test_creates_then_finds_the_catalog(
    kafka_bootstrap: str, topic_prefix: str, admin: AIOKafkaAdminClient
) -> None:
    specs = specs_with(2, topic_prefix)
    first = await ensure_topics(kafka_bootstrap, specs)
    second = await ensure_topics(kafka_bootstrap, specs)

    assert first == {spec.name: "created" for spec in specs}
    assert second == {spec.name: "exists" for spec in specs}
    counts = await partition_counts(admin, [spec.name for spec in specs])
    assert counts == {spec.name: spec.partitions for spec in specs}


async def test_a_topic_created_a_moment_ago_is_grown(
    kafka_bootstrap: str, topic_prefix: str, admin: AIOKafkaAdminClient
) -> None:
    """Right after creation the broker's metadata may not list a topic yet: asking to
    create it again is refused as existing, and it must be grown all the same (it used
    to be reported as created and left at one partition)."""
    for attempt in range(8):
        prefix = f"{topic_prefix}{attempt}."
        await ensure_topics(kafka_bootstrap, specs_with(1, prefix))
        name = f"{prefix}{Topic.LLM_COMPLETIONS}"
        wider = [spec for spec in specs_with(4, prefix) if spec.name == name]

        outcome = await ensure_topics(kafka_bootstrap, wider)

        assert outcome == {name: "grown"}
        assert await partition_counts(admin, [name]) == {name: 4}


async def test_two_provisioners_at_once_leave_the_larger_count(
    kafka_bootstrap: str, topic_prefix: str, admin: AIOKafkaAdminClient
) -> None:
    """Two deployments provisioning the same new topics at the same instant: whichever
    creates them first, the one asking for more partitions gets them."""
    narrow, wide = specs_with(1, topic_prefix), specs_with(3, topic_prefix)

    outcomes = await asyncio.gather(
        ensure_topics(kafka_bootstrap, narrow), ensure_topics(kafka_bootstrap, wide)
    )

    counts = await partition_counts(admin, [spec.name for spec in wide])
    assert counts == {spec.name: spec.partitions for spec in wide}
    for outcome in outcomes:
        assert set(outcome) == {spec.name for spec in wide}


async def test_a_refused_topic_is_an_error_not_a_creation(
    kafka_bootstrap: str, topic_prefix: str, admin: AIOKafkaAdminClient
) -> None:
    """One broker cannot hold three replicas: the creation fails, and says why."""
    specs = specs_with(1, topic_prefix, replication=3)

    with pytest.raises(ProvisionError, match="InvalidReplicationFactorError"):
        await ensure_topics(kafka_bootstrap, specs)

    assert not [name for name in await admin.list_topics() if name.startswith(topic_prefix)]


async def test_the_cli_reports_a_refusal_and_exits_2(
    kafka_bootstrap: str,
    topic_prefix: str,
    admin: AIOKafkaAdminClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "topics.toml"
    config.write_text("[defaults]\npartitions = 1\nreplication_factor = 3\n")
    argv = ["ensure", "--bootstrap-servers", kafka_bootstrap, "--config", str(config)]

    code = await asyncio.to_thread(main, [*argv, "--prefix", topic_prefix])

    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("llmops-topics: could not create topic")
    assert "InvalidReplicationFactorError" in error
