"""Gateway overhead: the gateway vs LiteLLM proxy vs a direct call, same stub upstream.

In one run, against one stub OpenAI-compatible upstream (`llmops.llm.stub_server`, its
own process) on this machine:
  (a) direct: the client calls the stub itself: the floor;
  (b) gateway: `python -m llmops_gateway` over real Kafka and FerretDB, an app API key with
      (generous) quotas, exact cache off, an `llm.completions` event per call;
  (c) LiteLLM proxy (`litellm[proxy]`, its own venv), master key, no database, no callbacks.
Each proxy runs one worker process. Measured, the three targets interleaved round by round
so machine noise falls on all alike: latency at concurrency 1 (added = proxy - direct, p50
and p99), requests/s at concurrency 64, each proxy's CPU time per request (the steadier
comparison on a shared machine) and the gateway's RSS after warm-up vs at the end.
Last line: one JSON object.

    make bench-gateway
    python bench/gateway_overhead.py --requests 3000 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from llmops.bus.provision import ensure_topics, topic_specs
from llmops.testing import free_port, wait_answering

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LITELLM = REPO / ".llmops" / "bench" / "litellm-venv" / "bin" / "litellm"
MODEL = "stub"
QUESTION = "question {n}: how do I change the billing address on my invoice?"
SYSTEM = "You are the support assistant of Acme. Answer briefly."


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the targets --------------------------------------------------------------------------


@dataclass
class Target:
    """One way to reach the stub: the same chat request, sent to `port`."""

    name: str
    port: int
    authorization: str = ""
    pid: int | None = None
    c1_ms: list[float] = field(default_factory=list)
    c64_requests: int = 0
    c64_seconds: float = 0.0
    c64_cpu_seconds: float = 0.0
    c1_cpu_seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    first_error: str = ""
    outbox_backlog: list[float] = field(default_factory=list)

    def request(self, n: int) -> bytes:
        """The bytes of one non-streamed chat request; `n` makes every body distinct."""
        body = json.dumps(
            {
                "model": MODEL,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": QUESTION.format(n=n)},
                ],
                "max_tokens": 64,
            },
            separators=(",", ":"),
        ).encode()
        auth = f"Authorization: Bearer {self.authorization}\r\n" if self.authorization else ""
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{auth}\r\n"
        )
        return head.encode() + body

    @property
    def rps(self) -> float:
        return self.c64_requests / self.c64_seconds

    def cpu_ms_per_request(self) -> tuple[float, float]:
        """CPU the server spent per answered request at c=1 and at c=64: what bounds its
        requests/s per core, and far less sensitive than wall time to the machine's load."""
        return (
            self.c1_cpu_seconds * 1000 / len(self.c1_ms),
            self.c64_cpu_seconds * 1000 / self.c64_requests,
        )


class Connection:
    """One keep-alive HTTP/1.1 connection: writes a prepared request, reads the whole answer.

    Deliberately this small (no pooling, no header objects): on two shared cores a general
    client would spend more CPU per request than the servers it measures.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def chat(self, target: Target, n: int) -> bool:
        """Send chat request `n`; whether the answer is a 200 that echoes its question."""
        self._writer.write(target.request(n))
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        at = lowered.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lowered.index(b"\r\n", at + 2)
            body = await self._reader.readexactly(int(lowered[at + 17 : end]))
        elif b"transfer-encoding: chunked" in lowered:
            body = await self._read_chunked()
        else:
            raise RuntimeError(f"{target.name}: an answer without a length: {head!r}")
        target.requests += 1
        if status == 200 and QUESTION.format(n=n).encode() in body:
            return True
        target.errors += 1
        target.first_error = target.first_error or f"{status}: {body[:300]!r}"
        return False

    async def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await self._reader.readexactly(size + 2))
            if size == 0:
                return b"".join(parts)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def sequential(target: Target, count: int, numbers: Iterator[int]) -> list[float]:
    """Latency in ms of `count` requests sent one after another on one connection."""
    connection = await Connection.open(target.port)
    timings = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            if await connection.chat(target, next(numbers)):
                timings.append((time.perf_counter() - started) * 1000)
    finally:
        await connection.close()
    return timings


async def saturate(
    target: Target, concurrency: int, seconds: float, numbers: Iterator[int]
) -> tuple[int, float]:
    """Requests completed and seconds taken by `concurrency` connections for `seconds`."""
    connections = [await Connection.open(target.port) for _ in range(concurrency)]
    deadline = time.perf_counter() + seconds

    async def loop(connection: Connection) -> int:
        done = 0
        while time.perf_counter() < deadline:
            done += await connection.chat(target, next(numbers))
        return done

    started = time.perf_counter()
    try:
        counts = await asyncio.gather(*(loop(c) for c in connections))
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return sum(counts), time.perf_counter() - started


# -- the processes ------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (LiteLLM may fork workers), from /proc."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of a process tree, MiB."""
    total_kb = 0
    for member in process_tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process tree has used, all its threads included."""
    ticks = 0
    for member in process_tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            # fields after the parenthesised command name; utime and stime are 14 and 15
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def start_stub(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "llmops.llm.stub_server", "--port", str(port)]
    return subprocess.Popen(command)


def start_gateway(
    port: int, stub_port: int, admin_key: str, prefix: str, database: str
) -> subprocess.Popen[bytes]:
    """The gateway as it is deployed: its own process, real Kafka and FerretDB."""
    backend = {"url": f"http://127.0.0.1:{stub_port}/v1", "model": MODEL}
    routes = {"routes": {MODEL: {"backends": [backend]}}}
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "GATEWAY_MODEL_ROUTES": json.dumps(routes),
        "GATEWAY_EXACT_CACHE": "false",  # every body differs anyway; measure the full path
        "GATEWAY_SEMANTIC_CACHE": "false",
        "GATEWAY_ADMIN_KEY": admin_key,
        "KAFKA_TOPIC_PREFIX": prefix,
        "MONGODB_DATABASE": database,
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "llmops_gateway"], env=env)


def start_litellm(
    litellm: Path, port: int, stub_port: int, master_key: str, work: Path
) -> subprocess.Popen[bytes]:
    """LiteLLM proxy in its fastest fair setup: one worker, no DB, no callbacks or retries."""
    config = work / "litellm.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{MODEL}",
                            "api_base": f"http://127.0.0.1:{stub_port}/v1",
                            "api_key": "dummy",
                        },
                    }
                ],
                "litellm_settings": {
                    "set_verbose": False,
                    "callbacks": [],
                    "num_retries": 0,
                    "request_timeout": 30,
                    "cache": False,
                },
                "general_settings": {"disable_spend_logs": True, "disable_error_logs": True},
            },
            indent=2,
        )
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_HOST", "REDIS_URL"}
    }
    env |= {
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list at start-up
        "LITELLM_LOG": "ERROR",
    }
    command = [str(litellm), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=(work / "litellm.log").open("wb")
    )


async def create_bench_key(gateway_url: str, admin_key: str) -> str:
    """An app key whose quotas are far above what the bench sends: checked, never hit."""
    spec = {
        "name": "bench-gateway",
        "role": "app",
        "requests_per_minute": 10_000_000,
        "tokens_per_minute": 1_000_000_000,
        "tokens_per_day": 100_000_000_000,
    }
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=gateway_url, headers=headers) as client:
        response = await client.post("/v1/admin/keys", json=spec)
        response.raise_for_status()
        secret: str = response.json()["secret"]
        return secret


# -- the run ------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000)[int(q * 1000) - 1]


def resident(targets: list[Target]) -> dict[str, float]:
    """RSS in MiB of each target that is a process of this run (not the direct call)."""
    return {t.name: rss_mb(t.pid) for t in targets if t.pid is not None}


def shown(rss: dict[str, float]) -> str:
    return ", ".join(f"{name} {mib:.1f} MiB" for name, mib in rss.items())


def rotated(targets: list[Target], by: int) -> list[Target]:
    """The targets in another order each round, so none always runs right after another."""
    by %= len(targets)
    return targets[by:] + targets[:by]


async def measure(targets: list[Target], args: argparse.Namespace) -> dict[str, float]:
    """Warm up, then interleave the c=1 and the c=64 rounds; RSS after warm-up and at the end."""
    numbers = itertools.count()
    for target in targets:  # up to the high-water mark of c=64, so later growth means a leak
        await sequential(target, args.warmup, numbers)
        await saturate(target, args.concurrency, 2.0, numbers)
    rss_start = resident(targets)
    say(f"warmed up; RSS {shown(rss_start)}")

    per_round = max(1, args.requests // args.rounds)
    for round_ in range(args.rounds):
        for target in rotated(targets, round_):
            cpu_before = cpu_seconds(target.pid) if target.pid is not None else 0.0
            target.c1_ms += await sequential(target, per_round, numbers)
            if target.pid is not None:
                target.c1_cpu_seconds += cpu_seconds(target.pid) - cpu_before
        say(
            f"c=1 round {round_ + 1}: "
            + ", ".join(f"{t.name} p50 {statistics.median(t.c1_ms):.2f} ms" for t in targets)
        )
    for round_ in range(args.rounds):
        rates = {}
        for target in rotated(targets, round_):
            cpu_before = cpu_seconds(target.pid) if target.pid is not None else 0.0
            done, elapsed = await saturate(
                target, args.concurrency, args.seconds / args.rounds, numbers
            )
            if target.pid is not None:
                target.c64_cpu_seconds += cpu_seconds(target.pid) - cpu_before
            target.c64_requests += done
            target.c64_seconds += elapsed
            rates[target.name] = done / elapsed
            if target.name == "gateway":  # right after its busiest phase
                metrics = await service_metrics(target.port)
                target.outbox_backlog.append(metrics.get("llmops_events_queued", 0.0))
        say(
            f"c={args.concurrency} round {round_ + 1}: "
            + ", ".join(f"{t.name} {rates[t.name]:.0f} req/s" for t in targets)
            + f"; RSS {shown(resident(targets))}"
        )
    rss_end = resident(targets)
    say(f"after {next(numbers)} requests; RSS {shown(rss_end)}")
    for target in targets:
        if target.errors > target.requests * args.max_error_rate:
            raise RuntimeError(
                f"{target.name}: {target.errors} of {target.requests} requests failed; "
                f"the first: {target.first_error}"
            )
    memory: dict[str, float] = {f"{name}_rss_mb": round(rss, 1) for name, rss in rss_end.items()}
    if "gateway" in rss_end:
        start, end = rss_start["gateway"], rss_end["gateway"]
        memory |= {"gateway_rss_start_mb": round(start, 1)}
        memory |= {"rss_growth_pct": round((end - start) / start * 100, 2)}
        memory |= await delivered_events(next(t for t in targets if t.name == "gateway"))
    return memory


async def service_metrics(port: int) -> dict[str, float]:
    """A service's Prometheus samples summed by name, and by "name/topic" where they have one."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
        response.raise_for_status()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            names = [sample.name]
            if "topic" in sample.labels:
                names.append(f"{sample.name}/{sample.labels['topic']}")
            for name in names:
                totals[name] = totals.get(name, 0.0) + sample.value
    return totals


async def delivered_events(gateway: Target, wait_s: float = 30.0) -> dict[str, float]:
    """Every answered call's `llm.completions` event acknowledged by Kafka, none dropped:
    waits (up to `wait_s`) for the outbox to send what is still queued, then counts."""
    answered = gateway.requests - gateway.errors
    deadline = time.monotonic() + wait_s
    while True:
        metrics = await service_metrics(gateway.port)
        delivered = metrics.get("llmops_events_delivered_total/llm.completions", 0.0)
        if delivered >= answered or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    dropped = metrics.get("llmops_events_dropped_total", 0.0)
    say(
        f"gateway events: {delivered:.0f} delivered for {answered} answered calls, "
        f"{dropped:.0f} dropped; outbox backlog after each c=64 round: "
        f"{', '.join(f'{depth:.0f}' for depth in gateway.outbox_backlog)}"
    )
    if dropped or delivered < answered:
        raise RuntimeError(
            f"the gateway lost events: {answered} calls answered, {delivered:.0f} events "
            f"delivered, {dropped:.0f} dropped"
        )
    return {
        "gateway_events_delivered": delivered,
        "gateway_outbox_backlog_max": max(gateway.outbox_backlog, default=0.0),
    }


def result_of(targets: list[Target], memory: dict[str, float]) -> dict[str, Any]:
    """The last line: the issue's keys first, then the raw numbers behind them."""
    by_name = {t.name: t for t in targets}
    direct = by_name["direct"]
    direct_p50, direct_p99 = statistics.median(direct.c1_ms), percentile(direct.c1_ms, 0.99)

    def added(target: Target) -> tuple[float, float]:
        return (
            round(statistics.median(target.c1_ms) - direct_p50, 3),
            round(percentile(target.c1_ms, 0.99) - direct_p99, 3),
        )

    result: dict[str, Any] = {}
    gateway, litellm = by_name.get("gateway"), by_name.get("litellm")
    if gateway is not None:
        result["added_p50_ms"], result["added_p99_ms"] = added(gateway)
        result["rps_c64"] = round(gateway.rps, 1)
    if litellm is not None:
        result["litellm_added_p50_ms"], result["litellm_added_p99_ms"] = added(litellm)
        result["litellm_rps_c64"] = round(litellm.rps, 1)
    if gateway is not None and litellm is not None:
        result["ratio_rps_vs_litellm"] = round(gateway.rps / litellm.rps, 2)
    if "rss_growth_pct" in memory:
        result["rss_growth_pct"] = memory.pop("rss_growth_pct")
    for target in targets:
        result[f"{target.name}_p50_ms"] = round(statistics.median(target.c1_ms), 3)
        result[f"{target.name}_p99_ms"] = round(percentile(target.c1_ms, 0.99), 3)
    result["direct_rps_c64"] = round(direct.rps, 1)
    for target in targets:
        if target.pid is not None:
            c1, c64 = target.cpu_ms_per_request()
            result[f"{target.name}_cpu_ms_per_request_c1"] = round(c1, 3)
            result[f"{target.name}_cpu_ms_per_request_c64"] = round(c64, 3)
    if gateway is not None and litellm is not None:
        result["ratio_cpu_per_request_litellm_vs_gateway_c64"] = round(
            litellm.cpu_ms_per_request()[1] / gateway.cpu_ms_per_request()[1], 2
        )
    result |= memory
    result |= {f"{t.name}_errors": t.errors for t in targets if t.name != "direct"}
    result["requests_c1"] = len(direct.c1_ms)
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return result


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    names = args.targets.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    stub_port, gateway_port, litellm_port = free_port(), free_port(), free_port()
    processes: dict[str, subprocess.Popen[bytes]] = {"stub": start_stub(stub_port)}
    targets = [Target("direct", stub_port)]
    admin_key, master_key = f"sk-admin-{secrets.token_hex(16)}", f"sk-{secrets.token_hex(16)}"
    prefix, database = f"bench{uuid.uuid4().hex[:8]}.", f"bench_{uuid.uuid4().hex[:8]}"
    finished = False
    try:
        if "litellm" in names:  # first: it takes the longest to import
            processes["litellm"] = start_litellm(
                args.litellm, litellm_port, stub_port, master_key, work
            )
        if "gateway" in names:
            bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
            config = {"defaults": {"partitions": 1, "retention_hours": 1}}
            await ensure_topics(bootstrap, topic_specs(config, prefix=prefix))
            processes["gateway"] = start_gateway(
                gateway_port, stub_port, admin_key, prefix, database
            )
        await wait_answering(f"http://127.0.0.1:{stub_port}/v1/models", processes["stub"])
        if "gateway" in names:
            url = f"http://127.0.0.1:{gateway_port}"
            await wait_answering(f"{url}/healthz", processes["gateway"])
            key = await create_bench_key(url, admin_key)
            targets.append(Target("gateway", gateway_port, key, processes["gateway"].pid))
        if "litellm" in names:
            url = f"http://127.0.0.1:{litellm_port}"
            await wait_answering(f"{url}/health/readiness", processes["litellm"])
            targets.append(Target("litellm", litellm_port, master_key, processes["litellm"].pid))
        say(f"ready: {', '.join(t.name for t in targets)}")
        memory = await measure(targets, args)
        finished = True
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if "gateway" in names:
            mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")
            )
            await mongo.drop_database(database)
            await mongo.close()
        if finished:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept {work}: LiteLLM's config and log")
    return result_of(targets, memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000, help="c=1 requests per target")
    parser.add_argument("--seconds", type=float, default=15.0, help="c=64 seconds per target")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per phase")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=200, help="c=1 warm-up requests")
    parser.add_argument(
        "--max-error-rate",
        type=float,
        default=0.001,
        help="fail when more of a target's answers are not a 200 echoing the question",
    )
    parser.add_argument(
        "--targets",
        default="direct,gateway,litellm",
        help="comma-separated; direct is always measured (default: all three)",
    )
    parser.add_argument(
        "--litellm",
        type=Path,
        default=DEFAULT_LITELLM,
        help="the litellm executable (make bench-gateway installs it)",
    )
    args = parser.parse_args()
    unknown = set(args.targets.split(",")) - {"direct", "gateway", "litellm"}
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if "litellm" in args.targets.split(",") and not args.litellm.exists():
        parser.error(f"{args.litellm} is missing: run `make bench-gateway` to install LiteLLM")
    # the load generator gets the fastest loop there is, so it takes little CPU from the servers
    result = uvloop.run(main_async(args))
    if "added_p50_ms" in result and "ratio_rps_vs_litellm" in result:
        say(
            f"targets: added p50 <= 1 ms ({result['added_p50_ms']}), requests/s >= 5 x LiteLLM "
            f"({result['ratio_rps_vs_litellm']}), RSS flat ({result['rss_growth_pct']} %)"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
