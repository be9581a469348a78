"""Where the local dev stack keeps its files and which ports it uses, read from the environment."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.local.processes import StackError

KAFKA_VERSION = "4.1.1"
FERRETDB_VERSION = "1.24.0"

# Default HTTP port of every service; LLMOPS_PORT_OFFSET is added to each so that a second
# stack (an e2e test, a colleague's branch) can run beside the first one.
SERVICE_BASE_PORTS: dict[str, int] = {
    "gateway": 8000,
    "ingestion": 8001,
    "indexer": 8002,
    "prompts": 8003,
    "inference": 8004,
    "evaluation": 8005,
    "monitoring": 8006,
    "feedback": 8007,
}

# Every variable the dev stack reads, with its default, for --help and the README.
ENV_DEFAULTS: dict[str, str] = {
    "LLMOPS_HOME": "<repo>/.llmops  (data/, logs/, run/)",
    "LLMOPS_CACHE": "~/.cache/llmops  (Kafka jars, FerretDB binary)",
    "LLMOPS_KAFKA_PORT": "9092",
    "LLMOPS_KAFKA_CONTROLLER_PORT": "9093",
    "LLMOPS_MONGO_PORT": "27017",
    "LLMOPS_PORT_OFFSET": "0  (added to every service port)",
    "KAFKA_BOOTSTRAP_SERVERS": "unset: start Kafka; set: use that broker",
    "MONGODB_URL": "unset: start FerretDB; set: use that server",
    "QDRANT_URL": "unset: services use embedded Qdrant under LLMOPS_HOME",
}


def redact(url: str) -> str:
    """A URL fit to print: credentials (``user:password@``) are masked."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise StackError(f"{name}={value} is outside 0..65535")
    return value


@dataclass(frozen=True)
class StackConfig:
    """Paths and ports of one dev stack; two stacks differ by LLMOPS_HOME and their ports."""

    repo: Path
    home: Path
    cache: Path
    venv: Path
    kafka_port: int
    kafka_controller_port: int
    mongo_port: int
    port_offset: int
    external_kafka: str | None
    external_mongo: str | None
    qdrant_url: str | None

    @classmethod
    def from_env(cls, repo: Path, environ: Mapping[str, str] = os.environ) -> StackConfig:
        """Read the stack's configuration; fails with a StackError on a malformed value."""
        home = Path(environ.get("LLMOPS_HOME") or repo / ".llmops").expanduser().resolve()
        cache = Path(environ.get("LLMOPS_CACHE") or "~/.cache/llmops").expanduser().resolve()
        # The services run in the workspace's virtual environment; when this script already
        # runs inside a virtual environment, that one is it.
        in_venv = sys.prefix != sys.base_prefix
        venv = Path(sys.prefix) if in_venv else repo / ".venv"
        return cls(
            repo=repo,
            home=home,
            cache=cache,
            venv=venv,
            kafka_port=_port(environ, "LLMOPS_KAFKA_PORT", 9092),
            kafka_controller_port=_port(environ, "LLMOPS_KAFKA_CONTROLLER_PORT", 9093),
            mongo_port=_port(environ, "LLMOPS_MONGO_PORT", 27017),
            port_offset=_port(environ, "LLMOPS_PORT_OFFSET", 0),
            external_kafka=environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            external_mongo=environ.get("MONGODB_URL") or None,
            qdrant_url=environ.get("QDRANT_URL") or None,
        )

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def kafka_bootstrap(self) -> str:
        return self.external_kafka or f"127.0.0.1:{self.kafka_port}"

    @property
    def mongodb_url(self) -> str:
        return self.external_mongo or f"mongodb://127.0.0.1:{self.mongo_port}/"

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def kafka_libs(self) -> Path:
        return self.cache / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def ferretdb_binary(self) -> Path:
        return self.cache / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"

    def infra_env(self) -> dict[str, str]:
        """The variables that point a client (a test, a service) at this stack's infrastructure."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap, "MONGODB_URL": self.mongodb_url}

    @property
    def blob_store_path(self) -> Path:
        return self.data_dir / "blobs"

    def storage_env(self) -> dict[str, str]:
        """Where uploaded documents are kept: the gateway writes them, ingestion reads them."""
        return {"BLOB_STORE_PATH": str(self.blob_store_path)}

    def qdrant_env(self) -> dict[str, str]:
        if self.qdrant_url:
            return {"QDRANT_URL": self.qdrant_url}
        return {"QDRANT_PATH": str(self.qdrant_path)}

    def qdrant_address(self) -> str:
        return self.qdrant_url or f"embedded, on disk at {self.qdrant_path}"
