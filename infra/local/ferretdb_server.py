"""FerretDB as a local process: a MongoDB-protocol server on an SQLite directory.

The binary is built once from the module pinned in ``infra/local/ferretdb`` (``go.mod``,
``go.sum``, ``tools.go``). ``go install ...@v1.24.0`` cannot be used: it asks the module proxy
for the version list, which is refused here. Vendoring a pinned module works, and the build
happens in a temporary copy so no ``vendor/`` lands in the repository. The vendored source
gets the fixes in ``ferretdb_patches`` first (ADR 0015: `_id` lookups use the `_id` index).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from infra.local.config import FERRETDB_VERSION, StackConfig, redact
from infra.local.ferretdb_patches import apply_patches, patches_digest
from infra.local.processes import (
    Managed,
    PortClaim,
    Report,
    StackError,
    port_accepts,
    require_tool,
)

MODULE_DIR = Path(__file__).resolve().parent / "ferretdb"
MODULE_FILES = ("go.mod", "go.sum", "tools.go")
PACKAGE = "github.com/FerretDB/FerretDB/cmd/ferretdb"
# FerretDB embeds build/version/*.txt; without version.txt the binary panics at start
# ("Invalid build/version/version.txt"). Release builds generate it; we write it.
VENDORED = Path("vendor/github.com/FerretDB/FerretDB")
VERSION_FILE = VENDORED / "build/version/version.txt"
SOURCE_DIGEST = ".source-sha256"


def _module_digest() -> str:
    digest = hashlib.sha256()
    for name in MODULE_FILES:
        digest.update((MODULE_DIR / name).read_bytes())
    digest.update(patches_digest())
    return digest.hexdigest()


def _go(args: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(
            f"{what} failed (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


def ensure_binary(config: StackConfig, report: Report) -> None:
    """Build the FerretDB binary into the cache once; a no-op when it is there."""
    binary = config.ferretdb_binary
    digest_file = binary.parent / SOURCE_DIGEST
    if (
        binary.is_file()
        and digest_file.is_file()
        and digest_file.read_text().strip() == (_module_digest())
    ):
        report(f"ferretdb {FERRETDB_VERSION} binary: cached at {binary}")
        return
    go = require_tool("go", "install Go 1.22+ (it builds FerretDB)")
    report(f"building FerretDB {FERRETDB_VERSION} (a minute or two on 2 cores)...")
    began = time.monotonic()
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GOTOOLCHAIN": "local",  # never download another Go toolchain
        "GOWORK": "off",
        "GOFLAGS": "-mod=mod -buildvcs=false",
        "CGO_ENABLED": "0",  # FerretDB's SQLite driver is pure Go: a static binary
    }
    with tempfile.TemporaryDirectory(prefix="ferretdb-build-", dir=binary.parent) as tmp:
        build_dir = Path(tmp)
        for name in MODULE_FILES:
            shutil.copy2(MODULE_DIR / name, build_dir / name)
        _go([go, "mod", "vendor"], build_dir, env, "go mod vendor (FerretDB)")
        (build_dir / VERSION_FILE).write_text(f"v{FERRETDB_VERSION}\n")
        apply_patches(build_dir / VENDORED)
        output = build_dir / "ferretdb"
        build_env = {**env, "GOFLAGS": "-mod=vendor -buildvcs=false"}
        _go(
            [go, "build", "-trimpath", "-o", str(output), PACKAGE],
            build_dir,
            build_env,
            "go build (FerretDB)",
        )
        output.replace(binary)
    digest_file.write_text(_module_digest() + "\n")
    report(f"ferretdb {FERRETDB_VERSION} binary: built in {time.monotonic() - began:.0f}s")


def _state_dir(config: StackConfig) -> Path:
    return config.data_dir / "ferretdb-state"


def managed(config: StackConfig) -> Managed:
    return Managed(
        name="ferretdb",
        home=config.home,
        markers=(str(config.ferretdb_binary), f"--state-dir={_state_dir(config)}"),
        address=redact(config.mongodb_url),
        stop_timeout_s=15.0,
    )


def port_claims(config: StackConfig) -> list[PortClaim]:
    return [PortClaim(config.mongo_port, "FerretDB (MongoDB protocol)", "LLMOPS_MONGO_PORT")]


def start_argv(config: StackConfig) -> list[str]:
    sqlite_dir = config.data_dir / "ferretdb"
    sqlite_dir.mkdir(parents=True, exist_ok=True)
    _state_dir(config).mkdir(parents=True, exist_ok=True)
    return [
        str(config.ferretdb_binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{sqlite_dir}/",
        f"--listen-addr=127.0.0.1:{config.mongo_port}",
        f"--state-dir={_state_dir(config)}",
        "--telemetry=disable",
        "--debug-addr=-",
    ]


def answers(url: str, timeout_s: float = 3.0) -> bool:
    """Whether a MongoDB-protocol server at ``url`` answers ``ping``."""
    client: MongoClient[dict[str, object]] = MongoClient(
        url,
        serverSelectionTimeoutMS=int(timeout_s * 1000),
        connectTimeoutMS=int(timeout_s * 1000),
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


def local_answers(config: StackConfig) -> bool:
    """Readiness of the FerretDB we started: cheap TCP check first, then a real ping."""
    return port_accepts("127.0.0.1", config.mongo_port) and answers(config.mongodb_url)
