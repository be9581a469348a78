"""Start, recognise and stop the dev stack's processes.

Every process runs in its own session (so its process group id is its pid and one signal
reaches the children it spawns), writes to ``<home>/logs/<name>.log`` and is remembered in
``<home>/run/<name>.pid``. A pid file is only trusted when ``/proc/<pid>`` shows the program
we launched, started for this ``LLMOPS_HOME``: a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

POLL_INTERVAL_S = 0.25
LOG_TAIL_LINES = 40

# Prints one progress line for the user.
Report = Callable[[str], None]


class StackError(Exception):
    """A failure the CLI reports as one clear message and a non-zero exit code."""


class State(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    STALE = "stale pid"


def require_tool(name: str, hint: str) -> str:
    """The path of a program the stack needs, or a StackError saying how to get it."""
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` is not on PATH; {hint}")
    return path


def _read_proc(pid: int, name: str) -> bytes | None:
    try:
        return (Path("/proc") / str(pid) / name).read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...)."""
    raw = _read_proc(pid, "stat")
    if raw is None:
        return None
    text = raw.decode(errors="replace")
    # The command name sits in parentheses and may itself contain spaces or parentheses.
    return text[text.rfind(")") + 2 :].split()


def _reap(pid: int) -> None:
    """Collect the exit status of our own child, so that it does not linger as a zombie."""
    # Not our child (ChildProcessError): whoever started it reaps it.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _has_exited(pid: int, fields: list[str]) -> bool:
    """Whether a process is done: a zombie is, unless other threads of it still run.

    A JVM's main thread turns zombie while the rest of the JVM is still shutting down.
    """
    if fields[0] not in {"Z", "X"}:
        return False
    try:
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except FileNotFoundError:
        return True


def is_alive(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie has exited)."""
    _reap(pid)
    fields = _stat_fields(pid)
    return fields is not None and not _has_exited(pid, fields)


def group_members(pgid: int) -> list[int]:
    """Live processes in the process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat_fields(pid)
        if fields is not None and fields[2] == str(pgid) and not _has_exited(pid, fields):
            members.append(pid)
    return members


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a socket of a server stopped a moment ago (TIME_WAIT) does not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class PortClaim:
    """A port a component is about to listen on, and the variable that moves it."""

    port: int
    component: str
    env_var: str


def check_ports_free(claims: Iterable[PortClaim]) -> None:
    """Fail, naming every taken port and the variable to change, before anything starts."""
    taken = [claim for claim in claims if not port_is_free(claim.port)]
    if not taken:
        return
    lines = [
        f"port {claim.port} ({claim.component}) is already in use by another process; "
        f"stop it or set {claim.env_var} to move it"
        for claim in taken
    ]
    raise StackError("\n".join(lines))


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"    ({path} does not exist)"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) or f"    ({path} is empty)"


@dataclass(frozen=True)
class Managed:
    """One long-running process of a stack: its pid file, its log and how to recognise it."""

    name: str
    home: Path
    # Substrings of /proc/<pid>/cmdline (arguments joined by spaces) that identify the program.
    markers: tuple[str, ...]
    address: str
    stop_timeout_s: float = 20.0

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / f"{self.name}.log"

    def read_pid(self) -> int | None:
        try:
            text = self.pid_file.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else -1

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is the program this component launched for this stack's home."""
        if pid <= 0 or not is_alive(pid):
            return False
        cmdline = _read_proc(pid, "cmdline")
        environ = _read_proc(pid, "environ")
        if cmdline is None or environ is None:
            return False
        args = cmdline.replace(b"\0", b" ").decode(errors="replace")
        home_entry = f"LLMOPS_HOME={self.home}".encode()
        return all(marker in args for marker in self.markers) and home_entry in environ.split(b"\0")

    def state(self) -> tuple[State, int | None]:
        pid = self.read_pid()
        if pid is None:
            return State.STOPPED, None
        if self.owns(pid):
            return State.RUNNING, pid
        return State.STALE, pid

    def forget(self) -> None:
        self.pid_file.unlink(missing_ok=True)

    def launch(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path
    ) -> subprocess.Popen[bytes]:
        """Start the process in its own session, output appended to its log, pid recorded."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        child_env = {**env, "LLMOPS_HOME": str(self.home)}
        with self.log_file.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"\n=== {stamp} devstack: {shlex.join(argv)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        partial = self.pid_file.with_suffix(".pid.tmp")
        partial.write_text(f"{process.pid}\n")
        partial.replace(self.pid_file)
        return process


@dataclass
class Starting:
    """A component waiting to be ready: the process we launched and the check that proves it."""

    managed: Managed
    process: subprocess.Popen[bytes]
    is_ready: Callable[[], bool]
    started_at: float = field(default_factory=time.monotonic)


def wait_until_ready(
    starting: Sequence[Starting],
    timeout_s: float,
    on_ready: Callable[[Starting, float], None],
) -> None:
    """Poll every component's readiness check until all pass; fail fast when one exits.

    On failure the StackError carries the tail of the failing component's log.
    """
    deadline = time.monotonic() + timeout_s
    pending = list(starting)
    while pending:
        for item in list(pending):
            if item.is_ready():
                pending.remove(item)
                on_ready(item, time.monotonic() - item.started_at)
                continue
            code = item.process.poll()
            if code is not None:
                raise StackError(
                    f"{item.managed.name} exited with code {code} before it was ready; "
                    f"last lines of {item.managed.log_file}:\n{log_tail(item.managed.log_file)}"
                )
        if not pending:
            return
        if time.monotonic() > deadline:
            details = "\n".join(
                f"{item.managed.name} (log {item.managed.log_file}):\n"
                f"{log_tail(item.managed.log_file)}"
                for item in pending
            )
            names = ", ".join(item.managed.name for item in pending)
            raise StackError(f"not ready after {timeout_s:.0f}s: {names}\n{details}")
        time.sleep(POLL_INTERVAL_S)


def _signal_group(pgid: int, signum: int) -> None:
    # ProcessLookupError: the whole group is already gone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _wait_groups_gone(pgids: Iterable[int], timeout_s: float) -> set[int]:
    """Poll until no live process is left in these groups; returns the groups still alive."""
    deadline = time.monotonic() + timeout_s
    alive = set(pgids)
    while alive:
        for pgid in list(alive):
            if not group_members(pgid):
                _reap(pgid)  # the leader, when we launched it, is now a zombie: collect it
                alive.discard(pgid)
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(POLL_INTERVAL_S / 2)
    return alive


def stop_all(components: Sequence[tuple[Managed, int]], report: Report) -> None:
    """SIGTERM each component's process group, wait for it, SIGKILL what outlives its timeout.

    Pid files are removed once their processes are verifiably gone.
    """
    if not components:
        return
    for _, pid in components:
        _signal_group(pid, signal.SIGTERM)
    timeout_s = max(managed.stop_timeout_s for managed, _ in components)
    survivors = _wait_groups_gone((pid for _, pid in components), timeout_s)
    for managed, pid in components:
        if pid in survivors:
            report(f"{managed.name}: still running {timeout_s:.0f}s after SIGTERM, sending SIGKILL")
            _signal_group(pid, signal.SIGKILL)
    stubborn = _wait_groups_gone(survivors, 10.0)
    for managed, pid in components:
        if pid in stubborn:
            raise StackError(f"{managed.name} (pid {pid}) did not exit even after SIGKILL")
        managed.forget()
        report(f"{managed.name}: stopped (pid {pid})")
