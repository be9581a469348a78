"""Command line of the local dev stack: setup, up, down, status, with-infra."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from infra.local import app_services, ferretdb_server, kafka_broker
from infra.local.config import (
    ENV_DEFAULTS,
    FERRETDB_VERSION,
    KAFKA_VERSION,
    StackConfig,
    redact,
)
from infra.local.processes import (
    Managed,
    PortClaim,
    Report,
    StackError,
    Starting,
    State,
    check_ports_free,
    stop_all,
    wait_until_ready,
)

INFRA_READY_TIMEOUT_S = 90.0
# Eight Python services booting at once on two cores, consumer groups joining: ~80 s.
SERVICES_READY_TIMEOUT_S = 120.0
EXTERNAL_READY_TIMEOUT_S = 30.0
TOPICS_TIMEOUT_S = 120.0
SCRIPT = "infra/local/devstack.py"


def say(line: str) -> None:
    print(line, flush=True)


def warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- setup


def setup(config: StackConfig, report: Report, *, only_needed: bool = False) -> None:
    """Fetch the Kafka jars and build FerretDB into the cache, once per version."""
    if only_needed and config.external_kafka:
        report(f"kafka: external broker {config.external_kafka}, no jars needed")
    else:
        kafka_broker.ensure_jars(config, report)
    if only_needed and config.external_mongo:
        report("mongodb: external server (MONGODB_URL), no FerretDB needed")
    else:
        ferretdb_server.ensure_binary(config, report)


# --------------------------------------------------------------------------- infrastructure


@dataclass(frozen=True)
class InfraComponent:
    managed: Managed
    ports: list[PortClaim]
    prepare_argv: Callable[[], list[str]]
    is_ready: Callable[[], bool]


def _infra_components(config: StackConfig) -> list[InfraComponent]:
    """The infrastructure this stack runs itself (none of what env vars point elsewhere)."""
    components = []
    if not config.external_kafka:

        def kafka_argv() -> list[str]:
            kafka_broker.write_server_properties(config)
            kafka_broker.format_storage_once(config, say)
            return kafka_broker.start_argv(config)

        components.append(
            InfraComponent(
                managed=kafka_broker.managed(config),
                ports=kafka_broker.port_claims(config),
                prepare_argv=kafka_argv,
                is_ready=lambda: kafka_broker.answers(config.kafka_bootstrap),
            )
        )
    if not config.external_mongo:
        components.append(
            InfraComponent(
                managed=ferretdb_server.managed(config),
                ports=ferretdb_server.port_claims(config),
                prepare_argv=lambda: ferretdb_server.start_argv(config),
                is_ready=lambda: ferretdb_server.local_answers(config),
            )
        )
    return components


def _poll(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _check_external(config: StackConfig) -> None:
    if config.external_kafka:
        say(f"kafka: using external broker KAFKA_BOOTSTRAP_SERVERS={config.external_kafka}")
        if not _poll(
            lambda: kafka_broker.answers(config.kafka_bootstrap), EXTERNAL_READY_TIMEOUT_S
        ):
            raise StackError(
                f"KAFKA_BOOTSTRAP_SERVERS={config.external_kafka} does not answer "
                f"(waited {EXTERNAL_READY_TIMEOUT_S:.0f}s); unset it to run a local broker"
            )
    if config.external_mongo:
        say("mongodb: using external server from MONGODB_URL")
        if not _poll(lambda: ferretdb_server.answers(config.mongodb_url), EXTERNAL_READY_TIMEOUT_S):
            raise StackError(
                f"MONGODB_URL does not answer ping (waited {EXTERNAL_READY_TIMEOUT_S:.0f}s); "
                "unset it to run a local FerretDB"
            )


def _confirm_answers(managed: Managed, is_ready: Callable[[], bool]) -> None:
    """A component found running (perhaps started a moment ago by another call) must answer."""
    if not _poll(is_ready, INFRA_READY_TIMEOUT_S):
        raise StackError(
            f"{managed.name} is running but does not answer at {managed.address}; "
            f"see {managed.log_file}, or restart it: {SCRIPT} down && {SCRIPT} up"
        )


def _clear_stale(managed: Managed) -> State:
    state, pid = managed.state()
    if state is State.STALE:
        say(f"{managed.name}: removing stale pid file (pid {pid} is not this stack's process)")
        managed.forget()
        return State.STOPPED
    if state is State.RUNNING:
        say(f"{managed.name}: already running (pid {pid}) at {managed.address}")
    return state


def start_infra(config: StackConfig, started: list[Managed]) -> None:
    """Start Kafka and FerretDB unless running or external; wait until both answer.

    Every component this call launches is appended to ``started`` as soon as it is launched,
    so a caller can stop exactly those, even when this call fails half-way.
    """
    components = _infra_components(config)
    states = {c.managed.name: _clear_stale(c.managed) for c in components}
    to_start = [c for c in components if states[c.managed.name] is State.STOPPED]
    check_ports_free(claim for component in to_start for claim in component.ports)
    starting = []
    for component in to_start:
        argv = component.prepare_argv()
        process = component.managed.launch(argv, os.environ, config.repo)
        started.append(component.managed)
        say(f"{component.managed.name}: started (pid {process.pid}), waiting until it answers")
        starting.append(Starting(component.managed, process, component.is_ready))

    def ready(item: Starting, elapsed_s: float) -> None:
        say(f"{item.managed.name}: ready at {item.managed.address} in {elapsed_s:.1f}s")

    wait_until_ready(starting, INFRA_READY_TIMEOUT_S, ready)
    for component in components:
        if states[component.managed.name] is State.RUNNING:
            _confirm_answers(component.managed, component.is_ready)
    _check_external(config)


def ensure_topics(config: StackConfig) -> None:
    """Create every catalog topic and its dead-letter topic (idempotent)."""
    script = config.venv / "bin" / "llmops-topics"
    if not script.is_file():
        warn(f"{script} does not exist; topics were not created")
        return
    env = {**os.environ, **config.infra_env()}
    try:
        result = subprocess.run(
            [str(script), "ensure"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=TOPICS_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise StackError(f"llmops-topics ensure took over {TOPICS_TIMEOUT_S:.0f}s") from None
    output = (result.stdout + result.stderr).strip()
    if result.returncode == 0:
        summary = output.splitlines()[0] if output else "done"
        say(f"topics: ensured by llmops-topics ({summary})")
        return
    if "ModuleNotFoundError" in output or "ImportError" in output:
        # The entry point is declared but its code is not there yet (work in progress).
        tail = "\n".join(output.splitlines()[-3:])
        warn(f"llmops-topics cannot be imported yet; topics were not created:\n{tail}")
        return
    raise StackError(f"llmops-topics ensure failed (exit {result.returncode}):\n{output[-3000:]}")


# --------------------------------------------------------------------------- services


def _health_check(service: app_services.Service) -> Callable[[], bool]:
    return lambda: app_services.healthy(service)


def start_services(config: StackConfig, services: Sequence[app_services.Service]) -> None:
    """Start every service not yet running and wait until each one's /healthz is 200."""
    to_start, running = [], []
    for service in services:
        managed = app_services.managed(config, service.name, service.url)
        if _clear_stale(managed) is State.STOPPED:
            to_start.append(service)
        else:
            running.append(service)
    check_ports_free(app_services.port_claim(service) for service in to_start)
    starting = []
    for service in to_start:
        managed = app_services.managed(config, service.name, service.url)
        env = {**os.environ, **app_services.environment(config, service, services)}
        process = managed.launch(app_services.start_argv(config, service), env, config.repo)
        say(f"{service.name}: started (pid {process.pid}) on port {service.port}")
        starting.append(Starting(managed, process, _health_check(service)))

    def ready(item: Starting, elapsed_s: float) -> None:
        say(f"{item.managed.name}: healthy in {elapsed_s:.1f}s")

    try:
        wait_until_ready(starting, SERVICES_READY_TIMEOUT_S, ready)
        for service in running:
            managed = app_services.managed(config, service.name, service.url)
            _confirm_answers(managed, _health_check(service))
    except StackError as error:
        raise StackError(f"{error}\n(stop what did start with: {SCRIPT} down)") from None


def ready_block(config: StackConfig, services: Sequence[app_services.Service]) -> str:
    rows = [
        ("kafka", config.kafka_bootstrap, f"KAFKA_BOOTSTRAP_SERVERS={config.kafka_bootstrap}"),
        ("mongodb", redact(config.mongodb_url), f"MONGODB_URL={redact(config.mongodb_url)}"),
        (
            "qdrant",
            config.qdrant_address(),
            " ".join(f"{key}={value}" for key, value in config.qdrant_env().items()),
        ),
    ]
    rows += [(s.name, s.url, f"docs {s.url}/docs") for s in services]
    width = max(len(str(row[1])) for row in rows)
    lines = [f"LLMOps dev stack is ready (LLMOPS_HOME={config.home})"]
    lines += [f"  {name:<12} {address:<{width}}  {extra}" for name, address, extra in rows]
    lines.append(f"  {'logs':<12} {config.logs_dir}")
    lines.append(f"  {'stop':<12} .venv/bin/python {SCRIPT} down")
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands


def cmd_setup(config: StackConfig, _args: argparse.Namespace) -> int:
    setup(config, say)
    return 0


def cmd_up(config: StackConfig, args: argparse.Namespace) -> int:
    began = time.monotonic()
    setup(config, say, only_needed=True)
    for directory in (config.data_dir, config.logs_dir, config.run_dir):
        directory.mkdir(parents=True, exist_ok=True)
    start_infra(config, started=[])
    ensure_topics(config)
    services: list[app_services.Service] = []
    if not args.infra_only:
        if not config.qdrant_url:
            config.qdrant_path.mkdir(parents=True, exist_ok=True)
        services = app_services.discover(config)
        start_services(config, services)
    say(ready_block(config, services))
    say(f"(up took {time.monotonic() - began:.1f}s)")
    return 0


def _service_components(config: StackConfig) -> list[Managed]:
    """Every service of the repo, plus any left in run/ by a service since removed."""
    urls = {service.name: service.url for service in app_services.discover(config)}
    names = set(urls)
    if config.run_dir.is_dir():
        names |= {path.stem for path in config.run_dir.glob("*.pid")} - {"kafka", "ferretdb"}
    return [app_services.managed(config, name, urls.get(name, "")) for name in sorted(names)]


def _stop(components: Sequence[Managed]) -> None:
    running = []
    for managed in components:
        state, pid = managed.state()
        if state is State.RUNNING and pid is not None:
            running.append((managed, pid))
        elif state is State.STALE:
            say(f"{managed.name}: removed stale pid file (pid {pid} was not this stack's)")
            managed.forget()
    stop_all(running, say)


def cmd_down(config: StackConfig, args: argparse.Namespace) -> int:
    # Services first (they hold connections to the infrastructure), then FerretDB, then Kafka.
    _stop(_service_components(config))
    _stop([ferretdb_server.managed(config)])
    _stop([kafka_broker.managed(config)])
    if args.purge and config.data_dir.exists():
        shutil.rmtree(config.data_dir)
        say(f"purged {config.data_dir}")
    say(f"dev stack is down (LLMOPS_HOME={config.home}; logs kept in {config.logs_dir})")
    return 0


def cmd_status(config: StackConfig, _args: argparse.Namespace) -> int:
    rows: list[tuple[str, str, str, str]] = []
    for managed, external in (
        (kafka_broker.managed(config), config.external_kafka),
        (ferretdb_server.managed(config), config.external_mongo),
    ):
        if external:
            rows.append((managed.name, "-", "external", managed.address))
            continue
        state, pid = managed.state()
        rows.append((managed.name, str(pid or "-"), state.value, managed.address))
    rows.append(
        (
            "qdrant",
            "-",
            "embedded" if not config.qdrant_url else "external",
            config.qdrant_address(),
        )
    )
    for managed in _service_components(config):
        state, pid = managed.state()
        rows.append((managed.name, str(pid or "-"), state.value, managed.address))
    header = ("COMPONENT", "PID", "STATE", "ADDRESS")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        say("  ".join([*cells, row[3]]))
    say(f"LLMOPS_HOME={config.home}  logs: {config.logs_dir}")
    return 0


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def cmd_with_infra(config: StackConfig, args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise StackError("with-infra needs a command: with-infra -- CMD [ARGS...]")
    # `kill <devstack pid>` must still stop what this call started.
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    setup(config, say, only_needed=True)
    started: list[Managed] = []
    try:
        start_infra(config, started)
        ensure_topics(config)
        env = {**os.environ, **config.infra_env()}
        say(f"with-infra: running {shlex.join(command)}")
        try:
            returncode = subprocess.run(command, env=env, check=False).returncode
        except FileNotFoundError:
            warn(f"command not found: {command[0]}")
            return 127
        return returncode if returncode >= 0 else 128 - returncode
    finally:
        # Stop only what this call started, in reverse order; leave what was already running.
        _stop(list(reversed(started)))


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    env_lines = "\n".join(f"  {name:<30} {default}" for name, default in ENV_DEFAULTS.items())
    parser = argparse.ArgumentParser(
        prog=SCRIPT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run the LLMOps platform locally without Docker: Apache Kafka "
            f"{KAFKA_VERSION} (KRaft, one node),\nFerretDB {FERRETDB_VERSION} (MongoDB "
            "protocol on SQLite), embedded Qdrant, and every services/<name> package,\n"
            "each as a plain process with its log in $LLMOPS_HOME/logs and pid in "
            "$LLMOPS_HOME/run."
        ),
        epilog=(
            f"environment (defaults):\n{env_lines}\n\n"
            "examples:\n"
            f"  .venv/bin/python {SCRIPT} up\n"
            f"  .venv/bin/python {SCRIPT} with-infra -- .venv/bin/pytest -m kafka\n"
            f"  LLMOPS_PORT_OFFSET=100 LLMOPS_HOME=/tmp/stack2 .venv/bin/python {SCRIPT} up"
        ),
    )
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    setup_parser = commands.add_parser(
        "setup",
        help="fetch the Kafka jars (mvn) and build FerretDB (go) into the cache; idempotent",
    )
    setup_parser.set_defaults(handler=cmd_setup)
    up = commands.add_parser(
        "up",
        help="setup, start Kafka, FerretDB, topics and every service; idempotent",
        description="Start what is not running yet and wait until each component answers.",
    )
    up.add_argument(
        "--infra-only",
        action="store_true",
        help="start Kafka and FerretDB (and create topics) but no service",
    )
    up.set_defaults(handler=cmd_up)
    down = commands.add_parser(
        "down", help="stop services, FerretDB and Kafka (data kept); idempotent"
    )
    down.add_argument("--purge", action="store_true", help="also delete $LLMOPS_HOME/data")
    down.set_defaults(handler=cmd_down)
    status = commands.add_parser("status", help="show each component's pid, state and address")
    status.set_defaults(handler=cmd_status)
    with_infra = commands.add_parser(
        "with-infra",
        help="run a command with Kafka and FerretDB up, then stop what this call started",
        description=(
            "Ensure setup, Kafka and FerretDB are up, run CMD with KAFKA_BOOTSTRAP_SERVERS and "
            "MONGODB_URL exported, stop only the components this call started, and exit with "
            "CMD's exit code."
        ),
    )
    with_infra.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    with_infra.set_defaults(handler=cmd_with_infra)
    return parser


def run(argv: Sequence[str], repo: Path) -> int:
    """Parse ``argv``, run the command; a StackError becomes one message and exit code 1."""
    args = build_parser().parse_args(argv)
    # aiokafka logs every refused connection while the broker boots; readiness is ours to report.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    logging.getLogger("aiokafka").propagate = False
    try:
        config = StackConfig.from_env(repo)
        handler: Callable[[StackConfig, argparse.Namespace], int] = args.handler
        return handler(config, args)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
