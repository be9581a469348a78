"""Drive isolated dev stacks (infra/local/devstack.py) as a user would, and clean up after them.

Each stack gets its own LLMOPS_HOME under the test's tmp_path and its own ports, so these
tests run beside a developer's `make up` stack (and beside `make test`'s own Kafka) without
touching it. The Kafka jars and the FerretDB binary come from the shared LLMOPS_CACHE.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

REPO = Path(__file__).resolve().parents[2]
DEVSTACK = REPO / "infra" / "local" / "devstack.py"
MAKEFILE = REPO / "Makefile"
VENV_PYTHON = ".venv/bin/python"

# The documented base port of every service (infra/local/README.md); the stack adds its offset.
SERVICE_BASE_PORTS = {
    "gateway": 8000,
    "ingestion": 8001,
    "indexer": 8002,
    "prompts": 8003,
    "inference": 8004,
    "evaluation": 8005,
    "monitoring": 8006,
    "feedback": 8007,
}

# Variables that would point the stack at someone else's infrastructure.
_FOREIGN_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL", "QDRANT_URL", "QDRANT_PATH")


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it holds; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.1)


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_is_alive(pid: int) -> bool:
    """Whether the process still runs: a zombie does not, unless other threads of it still do."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rfind(")") + 2] not in "ZX":
            return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except (FileNotFoundError, ProcessLookupError):
        return False


def processes_with_env(entry: str) -> set[int]:
    """Live processes whose environment holds ``entry`` (e.g. ``LLMOPS_HOME=/tmp/...``)."""
    found = set()
    needle = entry.encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if needle in environ.split(b"\0") and pid_is_alive(int(proc.name)):
            found.add(int(proc.name))
    return found


@dataclass(frozen=True)
class StackPorts:
    kafka: int
    kafka_controller: int
    mongo: int
    service_offset: int


class DevStack:
    """One dev stack with its own LLMOPS_HOME and ports, driven through its CLI or `make`."""

    def __init__(self, home: Path, ports: StackPorts) -> None:
        self.home = home
        self.ports = ports

    @property
    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in _FOREIGN_ENV}
        env.update(
            LLMOPS_HOME=str(self.home),
            LLMOPS_KAFKA_PORT=str(self.ports.kafka),
            LLMOPS_KAFKA_CONTROLLER_PORT=str(self.ports.kafka_controller),
            LLMOPS_MONGO_PORT=str(self.ports.mongo),
            LLMOPS_PORT_OFFSET=str(self.ports.service_offset),
        )
        return env

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.ports.mongo}/"

    def services(self) -> dict[str, int]:
        """Every service of the repo and the port this stack gives it."""
        names = sorted(path.parent.name for path in REPO.glob("services/*/pyproject.toml"))
        return {name: SERVICE_BASE_PORTS[name] + self.ports.service_offset for name in names}

    def all_ports(self) -> list[int]:
        infra = [self.ports.kafka, self.ports.kafka_controller, self.ports.mongo]
        return infra + list(self.services().values())

    def cli(self, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
        """``.venv/bin/python infra/local/devstack.py ARGS`` from the repo root."""
        return subprocess.run(
            [sys.executable, str(DEVSTACK), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def make(self, target: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
        """``make TARGET`` as the README says, or the CLI while the Makefile lacks the target.

        ``-o .venv/bin/python`` keeps make from re-syncing the environment these tests run in.
        """
        has_target = MAKEFILE.is_file() and re.search(
            rf"^{re.escape(target)}\s*:", MAKEFILE.read_text(), flags=re.MULTILINE
        )
        if not has_target:
            return self.cli(target, timeout_s=timeout_s)
        return subprocess.run(
            ["make", "--no-print-directory", "-o", VENV_PYTHON, target],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def pids(self) -> dict[str, int]:
        """The pid files in ``$LLMOPS_HOME/run``, by component."""
        run = self.home / "run"
        return {path.stem: int(path.read_text()) for path in sorted(run.glob("*.pid"))}

    def processes(self) -> set[int]:
        """Every live process started for this stack (they all carry its LLMOPS_HOME)."""
        return processes_with_env(f"LLMOPS_HOME={self.home}")

    def is_gone(self) -> bool:
        return not self.processes()

    def ports_are_free(self) -> bool:
        return all(port_is_free(port) for port in self.all_ports())

    def force_cleanup(self) -> None:
        """After a failed test: `down`, then SIGKILL whatever of this stack survived it."""
        if self.home.exists():
            self.cli("down", timeout_s=120)
        # Every process of the stack carries its LLMOPS_HOME, children included.
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def wait_ports_free(self, timeout_s: float = 15) -> None:
        wait_until(self.ports_are_free, timeout_s, f"ports {self.all_ports()} to be free")

    # Helpers for the tests, which get them through the fixture (conftest is not importable).
    is_alive = staticmethod(pid_is_alive)
    port_is_free = staticmethod(port_is_free)

    @staticmethod
    def describe(result: subprocess.CompletedProcess[str]) -> str:
        """A command's exit code and output, for assertion messages."""
        return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


class DevStackFactory(Protocol):
    def __call__(
        self, *, kafka: int, kafka_controller: int, mongo: int, service_offset: int
    ) -> DevStack: ...


@pytest.fixture
def make_devstack(tmp_path: Path) -> Iterator[DevStackFactory]:
    """Create isolated stacks; each is torn down (and verified gone) after the test."""
    stacks: list[DevStack] = []

    def create(*, kafka: int, kafka_controller: int, mongo: int, service_offset: int) -> DevStack:
        ports = StackPorts(kafka, kafka_controller, mongo, service_offset)
        stack = DevStack(tmp_path / f"stack{len(stacks)}", ports)
        busy = [port for port in stack.all_ports() if not port_is_free(port)]
        if busy:
            pytest.fail(f"ports {busy} are taken before the test starts; free them first")
        stacks.append(stack)
        return stack

    yield create
    for stack in stacks:
        stack.force_cleanup()
        wait_until(stack.is_gone, 30, f"the processes of {stack.home} to exit")
