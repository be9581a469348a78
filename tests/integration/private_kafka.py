"""A Kafka broker of a test's own, which the test may stop, kill, pause and restart.

The shared broker (`make test`) serves every other test, so outage tests never touch it.
This one runs the same way the dev stack runs Kafka (infra/local/kafka_broker.py: one
KRaft node from the cached release jars) on free ports, with its data under the test's
tmp_path; a restart reuses the data directory and the ports, so clients reconnect to the
same address and find their topics and records again.

    async def test_outage(private_kafka: PrivateKafka) -> None:
        prefix = await private_kafka.create_topics()   # catalog topics, 1 partition each
        ... KAFKA_BOOTSTRAP_SERVERS=private_kafka.bootstrap, KAFKA_TOPIC_PREFIX=prefix ...
        await private_kafka.stop()      # SIGTERM, waits until the process is gone
        await private_kafka.start()     # same ports, same data; returns once it answers

The fixture (`tests/integration/conftest.py`) starts it and removes it after the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from llmops.bus.provision import ensure_topics, topic_specs
from llmops.testing import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # infra/local is a directory of scripts, not an installed package
    sys.path.insert(0, str(REPO))

from infra.local import kafka_broker  # noqa: E402  (needs the path above)
from infra.local.config import StackConfig  # noqa: E402
from infra.local.processes import Managed, log_tail, port_accepts, stop_all  # noqa: E402

START_TIMEOUT_S = 120.0


class PrivateKafka:
    """One single-node KRaft broker under `home`, on ports fixed for its lifetime."""

    def __init__(self, home: Path) -> None:
        environ = {
            "LLMOPS_HOME": str(home),
            "LLMOPS_KAFKA_PORT": str(free_port()),
            "LLMOPS_KAFKA_CONTROLLER_PORT": str(free_port()),
        }
        if os.environ.get("LLMOPS_CACHE"):
            environ["LLMOPS_CACHE"] = os.environ["LLMOPS_CACHE"]
        self.config = StackConfig.from_env(REPO, environ)
        self._managed: Managed = kafka_broker.managed(self.config)
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def bootstrap(self) -> str:
        """`host:port` for KAFKA_BOOTSTRAP_SERVERS; the same across restarts."""
        return f"127.0.0.1:{self.config.kafka_port}"

    @property
    def log_file(self) -> Path:
        return self._managed.log_file

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        """Start the broker (formatting its storage the first time) and wait until it answers."""
        if self.running:
            return
        await asyncio.to_thread(self._launch)
        try:
            await wait_until(self._answers, timeout=START_TIMEOUT_S, interval=0.25, what="Kafka")
        except TimeoutError as exc:
            msg = f"private Kafka did not start; log tail:\n{log_tail(self.log_file)}"
            raise RuntimeError(msg) from exc

    def _launch(self) -> None:
        kafka_broker.ensure_jars(self.config, lambda line: None)
        kafka_broker.write_server_properties(self.config)
        kafka_broker.format_storage_once(self.config, lambda line: None)
        self._process = self._managed.launch(
            kafka_broker.start_argv(self.config), env=dict(os.environ), cwd=REPO
        )

    async def _answers(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            msg = f"private Kafka exited; log tail:\n{log_tail(self.log_file)}"
            raise RuntimeError(msg)
        if not port_accepts("127.0.0.1", self.config.kafka_port):
            return False
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3_000)
        try:
            await asyncio.wait_for(admin.start(), 5)
            await asyncio.wait_for(admin.list_topics(), 5)
        except Exception:
            return False
        finally:
            await admin.close()
        return True

    async def stop(self) -> None:
        """Stop the broker cleanly (SIGTERM to its process group) and wait until it is gone."""
        if self._process is None:
            return
        if self._paused:
            self.resume()
        process, self._process = self._process, None
        await asyncio.to_thread(stop_all, [(self._managed, process.pid)], lambda line: None)
        await asyncio.to_thread(process.wait, 30)

    async def kill(self) -> None:
        """SIGKILL the broker: a crash, no controlled shutdown."""
        if self._process is None:
            return
        process, self._process = self._process, None
        os.killpg(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait, 30)
        self._paused = False
        self._managed.forget()

    def pause(self) -> None:
        """SIGSTOP the broker: connections open, nothing answered (a hung broker)."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        if self._process is not None and self._paused:
            os.killpg(self._process.pid, signal.SIGCONT)
            self._paused = False

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def create_topics(self, prefix: str | None = None) -> str:
        """Every catalog topic (and .dlq) under a fresh prefix, one partition each; the prefix."""
        prefix = prefix or f"t{uuid.uuid4().hex[:10]}."
        config = {"defaults": {"partitions": 1, "retention_hours": 1, "dlq_retention_hours": 1}}
        await ensure_topics(self.bootstrap, topic_specs(config, prefix=prefix))
        return prefix
