"""Create the catalog's topics and their dead-letter topics: `llmops-topics ensure`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import (
    InvalidPartitionsError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from llmops.events.catalog import CONTRACTS

_HOUR_MS = 3_600_000
DEFAULT_CONFIG = Path("infra/kafka/topics.toml")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    retention_ms: int


def topic_specs(config: Mapping[str, Any], prefix: str = "") -> list[TopicSpec]:
    """Every catalog topic and its `.dlq`, with partitions and retention from `config`."""
    defaults = {"partitions": 3, "replication_factor": 1, "retention_hours": 168}
    defaults |= {
        "dlq_partitions": 1,
        "dlq_retention_hours": 720,
        **config.get("defaults", {}),
    }
    overrides: Mapping[str, Mapping[str, Any]] = config.get("topics", {})
    unknown = set(overrides) - {contract.topic for contract in CONTRACTS.values()}
    if unknown:
        msg = f"topics config names topics that are not in the catalog: {sorted(unknown)}"
        raise ValueError(msg)
    specs: list[TopicSpec] = []
    for contract in CONTRACTS.values():
        own = {**defaults, **overrides.get(contract.topic, {})}
        replication = int(own["replication_factor"])
        specs.append(
            TopicSpec(
                f"{prefix}{contract.topic}",
                int(own["partitions"]),
                replication,
                int(own["retention_hours"] * _HOUR_MS),
            )
        )
        specs.append(
            TopicSpec(
                f"{prefix}{contract.dlq}",
                int(own["dlq_partitions"]),
                replication,
                int(own["dlq_retention_hours"] * _HOUR_MS),
            )
        )
    return specs


class ProvisionError(RuntimeError):
    """The broker refused to create or grow a topic."""


async def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec], *, settle_timeout_s: float = 30.0
) -> dict[str, str]:
    """Create missing topics and grow partitions where config asks for more.

    Idempotent: returns what happened to each topic (`created`, `grown`, `exists`).
    Partitions are never reduced (Kafka cannot), and existing retention is left to
    the operator, who may have tuned it on purpose. A topic that another client creates
    meanwhile (or that the broker's metadata does not list yet) is grown like any
    existing one; any other refusal raises `ProvisionError`. It returns once the broker's
    metadata describes every topic with its partitions, so consumers started next see them.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="llmops-topics")
    await admin.start()
    try:
        wanted = {spec.name: spec for spec in specs}
        existing = set(await admin.list_topics())
        missing = [spec for name, spec in wanted.items() if name not in existing]
        outcome = await _create(admin, missing) if missing else {}
        present = [name for name in wanted if name not in outcome]
        counts = await _described(admin, dict.fromkeys(present, 1), settle_timeout_s)
        grow = {
            name: NewPartitions(wanted[name].partitions)
            for name in present
            if counts[name] < wanted[name].partitions
        }
        if grow:
            with contextlib.suppress(InvalidPartitionsError):  # grown meanwhile: checked next
                await admin.create_partitions(grow)
        for name in present:
            outcome[name] = "grown" if name in grow else "exists"
        minimum = {name: spec.partitions for name, spec in wanted.items()}
        await _described(admin, minimum, settle_timeout_s)
        return {name: outcome[name] for name in wanted}
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> dict[str, str]:
    """Create `specs`; those that exist already (created meanwhile) are left out."""
    response = await admin.create_topics(
        [
            NewTopic(
                spec.name,
                spec.partitions,
                spec.replication_factor,
                topic_configs={"retention.ms": str(spec.retention_ms)},
            )
            for spec in specs
        ]
    )
    created = {}
    for name, code, message, *_ in response.topic_errors:
        if code == 0:
            created[name] = "created"
        elif code != TopicAlreadyExistsError.errno:
            error = for_code(code).__name__
            raise ProvisionError(f"could not create topic {name}: {error}: {message}")
    return created


async def _described(
    admin: AIOKafkaAdminClient, minimum: dict[str, int], timeout_s: float
) -> dict[str, int]:
    """Each topic's partition count, once the broker's metadata describes each with at
    least `minimum` partitions (a topic created or grown a moment ago may lag there)."""
    counts: dict[str, int] = {}
    waiting = list(minimum)
    deadline = time.monotonic() + timeout_s
    while waiting:
        lagging = {}
        for info in await admin.describe_topics(waiting):
            name, partitions = info["topic"], len(info["partitions"])
            if info["error_code"] == 0 and partitions >= minimum[name]:
                counts[name] = partitions
            elif info["error_code"] == 0:
                lagging[name] = f"{partitions} of {minimum[name]} partitions"
            else:
                lagging[name] = for_code(info["error_code"]).__name__
        waiting = list(lagging)
        if waiting and time.monotonic() >= deadline:
            msg = f"the broker's metadata did not settle in {timeout_s:.0f}s: {lagging}"
            raise ProvisionError(msg)
        if waiting:
            await asyncio.sleep(0.1)
    return counts


def load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmops-topics", description="Provision the platform's Kafka topics."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ensure = sub.add_parser("ensure", help="create missing topics and their .dlq topics")
    ensure.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    ensure.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("KAFKA_TOPICS_CONFIG"),
        help="TOML with partitions and retention "
        f"(default: $KAFKA_TOPICS_CONFIG, else {DEFAULT_CONFIG} if present)",
    )
    ensure.add_argument(
        "--prefix",
        default=os.environ.get("KAFKA_TOPIC_PREFIX", ""),
        help="topic name prefix (default: $KAFKA_TOPIC_PREFIX)",
    )
    args = parser.parse_args(argv)
    config_path: Path | None = args.config
    if config_path is None and DEFAULT_CONFIG.exists():
        config_path = DEFAULT_CONFIG
    try:
        specs = topic_specs(load_config(config_path), prefix=args.prefix)
        outcome = asyncio.run(ensure_topics(args.bootstrap_servers, specs))
    except (OSError, ValueError, tomllib.TOMLDecodeError, KafkaError, ProvisionError) as exc:
        print(f"llmops-topics: {exc}", file=sys.stderr)
        return 2
    created = sorted(name for name, state in outcome.items() if state != "exists")
    print(f"topics: {len(outcome)} in catalog, {len(created)} created or grown")
    for name in created:
        print(f"  {outcome[name]}: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
