"""Apache Kafka as a local process: a single KRaft node (broker and controller in one JVM).

The broker runs from the release jars on Maven Central (fetched once by ``mvn`` into the
cache) with the machine's Java; no tarball, no Docker.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra.local.config import KAFKA_VERSION, StackConfig
from infra.local.processes import (
    Managed,
    PortClaim,
    Report,
    StackError,
    port_accepts,
    require_tool,
)

HERE = Path(__file__).resolve().parent
POM = HERE / "kafka" / "pom.xml"
LOG4J_CONFIG = HERE / "kafka" / "log4j2.yaml"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
# Written last into the cache: jars without it are an interrupted download.
COMPLETE_MARKER = ".complete"


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def ensure_jars(config: StackConfig, report: Report) -> None:
    """Fetch the broker's runtime jars into the cache once; a no-op when they are there.

    The cache is keyed by the Kafka version and checked against the pom's digest, so a
    changed pom (a new dependency) fetches again.
    """
    libs = config.kafka_libs
    marker = libs.parent / COMPLETE_MARKER
    if marker.is_file() and marker.read_text().strip() == _pom_digest():
        report(f"kafka {KAFKA_VERSION} jars: cached in {libs}")
        return
    mvn = require_tool("mvn", "install Maven 3.8+ (it fetches the Kafka jars)")
    report(f"kafka {KAFKA_VERSION} jars: fetching with mvn into {libs} ...")
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Fetch into a fresh directory and swap it in, so an interrupted run never looks complete.
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    try:
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"mvn could not fetch the Kafka jars (exit {result.returncode}):\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        if not any(staging.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
            raise StackError(f"mvn finished but kafka_2.13-{KAFKA_VERSION}.jar is not in {staging}")
        staging.chmod(0o755)  # mkdtemp makes it private; the jars are not secret
        shutil.rmtree(libs, ignore_errors=True)
        staging.replace(libs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(_pom_digest() + "\n")
    report(f"kafka {KAFKA_VERSION} jars: {sum(1 for _ in libs.glob('*.jar'))} jars fetched")


def managed(config: StackConfig) -> Managed:
    return Managed(
        name="kafka",
        home=config.home,
        markers=(MAIN_CLASS, str(server_properties_path(config))),
        address=config.kafka_bootstrap,
        stop_timeout_s=30.0,
    )


def port_claims(config: StackConfig) -> list[PortClaim]:
    return [
        PortClaim(config.kafka_port, "Kafka broker", "LLMOPS_KAFKA_PORT"),
        PortClaim(config.kafka_controller_port, "Kafka controller", "LLMOPS_KAFKA_CONTROLLER_PORT"),
    ]


def server_properties_path(config: StackConfig) -> Path:
    return config.run_dir / "kafka" / "server.properties"


def data_dir(config: StackConfig) -> Path:
    return config.data_dir / "kafka"


def write_server_properties(config: StackConfig) -> Path:
    """(Re)write the broker's configuration; ports may change between runs, the data stays."""
    path = server_properties_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    port, cport = config.kafka_port, config.kafka_controller_port
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir(config)),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Kafka 4 holds offset commits 5 ms to batch them; a one-node dev broker gains
        # nothing from that, and consumers committing per message run ~3x faster.
        "group.coordinator.append.linger.ms": "0",
        # Topics come from the catalog (`llmops-topics ensure`), never from a typo.
        "auto.create.topics.enable": "false",
    }
    body = "".join(f"{key}={value}\n" for key, value in settings.items())
    path.write_text("# Written by infra/local/devstack.py on every start; edits are lost.\n" + body)
    return path


def _java_base(config: StackConfig) -> list[str]:
    java = require_tool("java", "install a JDK 17+ (Kafka runs on it)")
    return [
        java,
        "-Xms256m",
        # Heap grows with partitions: a full test run creates thousands (one topic set per test).
        "-Xmx1536m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{config.kafka_libs}/*",  # the JVM expands the wildcard itself
    ]


def format_storage_once(config: StackConfig, report: Report) -> None:
    """Format the KRaft log directory with a fresh cluster id, the first time only."""
    log_dir = data_dir(config)
    if (log_dir / "meta.properties").is_file():
        return
    properties = server_properties_path(config)

    def storage_tool(*args: str) -> str:
        result = subprocess.run(
            [*_java_base(config), STORAGE_TOOL, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise StackError(
                f"kafka StorageTool {args[0]} failed (exit {result.returncode}):\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result.stdout.strip()

    cluster_id = storage_tool("random-uuid").splitlines()[-1].strip()
    storage_tool("format", "-t", cluster_id, "-c", str(properties))
    report(f"kafka: formatted {log_dir} (cluster id {cluster_id})")


def start_argv(config: StackConfig) -> list[str]:
    return [*_java_base(config), MAIN_CLASS, str(server_properties_path(config))]


async def _list_topics(bootstrap: str, timeout_s: float) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()


def answers(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """Whether the broker serves metadata requests (what every client needs first)."""
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not port.isdigit() or not port_accepts(host or "127.0.0.1", int(port)):
        return False
    try:
        asyncio.run(asyncio.wait_for(_list_topics(bootstrap, timeout_s), timeout_s + 1))
    except (KafkaError, OSError, TimeoutError):
        return False
    return True
