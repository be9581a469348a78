"""Create the catalog's topics and their dead-letter topics: `llmops-topics ensure`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

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


async def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec]) -> dict[str, str]:
    """Create missing topics and grow partitions where config asks for more.

    Idempotent: returns what happened to each topic (`created`, `grown`, `exists`).
    Partitions are never reduced (Kafka cannot), and existing retention is left to
    the operator, who may have tuned it on purpose.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="llmops-topics")
    await admin.start()
    try:
        wanted = {spec.name: spec for spec in specs}
        existing = set(await admin.list_topics())
        missing = [spec for name, spec in wanted.items() if name not in existing]
        outcome = {name: "exists" for name in wanted if name in existing}
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        spec.partitions,
                        spec.replication_factor,
                        topic_configs={"retention.ms": str(spec.retention_ms)},
                    )
                    for spec in missing
                ]
            )
            outcome |= {spec.name: "created" for spec in missing}
        present = [name for name in wanted if name in existing]
        if present:
            described = await admin.describe_topics(present)
            grow = {
                info["topic"]: NewPartitions(wanted[info["topic"]].partitions)
                for info in described
                if len(info["partitions"]) < wanted[info["topic"]].partitions
            }
            if grow:
                await admin.create_partitions(grow)
                outcome |= dict.fromkeys(grow, "grown")
        return outcome
    finally:
        await admin.close()


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
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"llmops-topics: {exc}", file=sys.stderr)
        return 2
    created = sorted(name for name, state in outcome.items() if state != "exists")
    print(f"topics: {len(outcome)} in catalog, {len(created)} created or grown")
    for name in created:
        print(f"  {outcome[name]}: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
