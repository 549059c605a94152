"""Child processes: start one in its own process group, wait until ready, keep a pid file, stop the group.

Every long-lived process the platform starts goes through here: the stack's services, the lab's
prediction service, the job runner and each job's `mlflow run`. `Process` is one handle on such a
process, started here (`spawn`) or found in a pid file or job record: `wait`, `get_status`,
`cancel` (after MLflow's `SubmittedRun`; `cancel` signals the whole process group). A process is
named by its pid *and* its start time (`ProcessRef`): a reused pid is never waited for or signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from miniautoml.errors import MiniAutoMLError
from miniautoml.files import atomic_write_json

DEFAULT_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
KILL_WAIT = 10.0  # seconds SIGKILLed processes get to disappear
POLL = 0.05
# Statuses of `Process.get_status()`. EXITED: ended, exit code unknown (not this process's child).
RUNNING, FINISHED, FAILED, KILLED, EXITED = "running", "finished", "failed", "killed", "exited"


class ProcessError(MiniAutoMLError):
    """A process could not be started, did not become ready, or could not be stopped."""


# --------------------------------------------------------------------------- identity


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after its closing ')'.
    return text[text.rfind(")") + 2 :].split()


@dataclass(frozen=True)
class ProcessRef:
    """A process on a host: `pid` plus its start time, so a recycled pid is not mistaken for it."""

    pid: int
    start: str = ""
    host: str = ""

    @classmethod
    def of(cls, pid: int) -> "ProcessRef":
        """`pid` with its start in clock ticks since boot ("" without /proc): exact and immune to
        changes of the system clock, unlike a start time in seconds since the epoch."""
        fields = _stat_fields(pid)
        return cls(pid=pid, start=fields[19] if fields and len(fields) > 19 else "", host=socket.gethostname())

    def encode(self) -> str:
        return f"{self.pid}:{self.start}:{self.host}"

    @classmethod
    def decode(cls, text: str | None) -> "ProcessRef | None":
        if not text:
            return None
        pid, _, rest = text.partition(":")
        start, _, host = rest.partition(":")
        try:
            return cls(pid=int(pid), start=start, host=host)
        except ValueError:
            return None

    @property
    def local(self) -> bool:
        return not self.host or self.host == socket.gethostname()

    def alive(self) -> bool | None:
        """True/False on this host; None when the process lives on another host (unknowable)."""
        if not self.local:
            return None
        fields = _stat_fields(self.pid)
        if fields is None:
            if os.path.isdir("/proc"):
                return False
            try:  # no /proc (macOS): signal 0 probes existence
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        if fields[0] in ("Z", "X"):  # zombie: exited, waiting to be reaped
            return False
        return not self.start or fields[19] == self.start

    def kill_group(self, sig: int = signal.SIGTERM) -> bool:
        """Signal the process group this process leads; False if it is gone (or not ours)."""
        if self.alive() is not True:
            return False
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True


def signal_name(returncode: int) -> str:
    """`SIGKILL` for the return code -9 of a process killed by signal 9."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


# --------------------------------------------------------------------------- ports and readiness


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when `url` answers 2xx. Proxies are bypassed: the processes are local."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


# --------------------------------------------------------------------------- the handle


@dataclass(frozen=True)
class Command:
    """How to run a process: its argv, working directory and environment."""

    argv: list[str]
    cwd: str | Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # set on top of this process's environment
    unset: tuple[str, ...] = ()  # removed from this process's environment

    def environ(self) -> dict[str, str]:
        """The child's whole environment."""
        env = {k: v for k, v in os.environ.items() if k not in self.unset}
        env.update(self.env)
        return env


class Process:
    """One process, leader of its own process group: started here (`spawn`: its exit code is
    known) or found again through its `ProcessRef` (`Process(ref)`, `from_record`)."""

    def __init__(self, ref: ProcessRef, popen: subprocess.Popen | None = None, *, name: str = "",
                 log: Path | None = None, ready_url: str | None = None) -> None:
        self.ref, self.popen = ref, popen
        self.name = name or f"pid {ref.pid}"
        self.log, self.ready_url = log, ready_url

    @property
    def pid(self) -> int:
        return self.ref.pid

    @property
    def returncode(self) -> int | None:
        """The exit code (negative: killed by that signal); None while it runs or when unknown."""
        return None if self.popen is None else self.popen.poll()

    def running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return self.ref.alive() is True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the process has exited (True), or at most `timeout` seconds (False)."""
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while self.running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(max(0.0, min(POLL, deadline - time.monotonic())))
        return True

    def get_status(self) -> str:
        """RUNNING, FINISHED (exit 0), FAILED (exit > 0), KILLED (by a signal) or EXITED (code unknown)."""
        if self.running():
            return RUNNING
        code = self.returncode
        if code is None:
            return EXITED
        return FINISHED if code == 0 else KILLED if code < 0 else FAILED

    def cancel(self, grace: float = DEFAULT_GRACE) -> str:
        """Stop the process: SIGTERM its group, then SIGKILL the group and every descendant left
        after `grace` seconds (descendants that moved to sessions of their own included).
        Returns "SIGTERM" or "SIGKILL" (what ended it), or "already-exited"."""
        procs = process_tree(self.pid) if self.running() else []  # before the leader exits and orphans them
        # SIGTERM to the leader's group only: descendants get the leader's orderly shutdown first
        return stop_tree(procs, grace, term=procs[:1], group=self.pid, name=self.name) if procs else "already-exited"

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal what is left of the group this process led, even after it exited (e.g. a trainer
        that outlived its `mlflow run`)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Process | None":
        """The live process a pid file record describes; None when it exited or its pid now
        names another process (other start time or command line)."""
        import psutil

        try:
            ref = ProcessRef(pid=int(record["pid"]), start=str(record.get("start") or ""))
            if ref.alive() is not True:
                return None
            proc = psutil.Process(ref.pid)
            # A record without the start in clock ticks has it in seconds since the epoch only.
            if not ref.start and abs(proc.create_time() - float(record.get("create_time", 0))) > 0.5:
                return None
            if record.get("cmdline") and not _same_command(proc.cmdline(), list(record["cmdline"])):
                return None
        except (psutil.Error, KeyError, TypeError, ValueError):
            return None
        log = record.get("log")
        return cls(ref, name=str(record.get("name", "")), log=Path(log) if log else None,
                   ready_url=record.get("health_url"))


def _same_command(live: list[str], recorded: list[str]) -> bool:
    """`live` runs `recorded`, also when `recorded[0]` is a script whose shebang put an
    interpreter in front of it (`.venv/bin/mlflow server` runs as `python3.11 .../mlflow server`)."""
    cut = len(live) - len(recorded)
    return live == recorded or (bool(recorded) and cut > 0 and live[cut:] == recorded)


def process_tree(pid: int) -> list[Any]:
    """`pid` and its descendants as psutil handles (a signal never reaches a reused pid); [] if gone."""
    import psutil

    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_tree(procs: Sequence[Any], grace: float = DEFAULT_GRACE, *, term: Sequence[Any] | None = None,
              group: int | None = None, name: str = "processes") -> str:
    """The one way a process tree is stopped: SIGTERM `term` (default: all `procs`) and the group
    `group` leads, after `grace` s SIGKILL that group and what is left of `procs`. Returns what ended
    them ("SIGTERM"/"SIGKILL"); ProcessError if any survive. Never reaps: a zombie counts as gone."""
    import psutil

    def send(targets: Sequence[Any], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group is not None and os.getpgid(group) == group:
                os.killpg(group, sig)
        for proc in targets:
            if not _gone(proc):
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    proc.send_signal(sig)

    def all_gone(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not (done := all(_gone(p) for p in procs)) and time.monotonic() < deadline:
            time.sleep(POLL)
        return done

    send(procs if term is None else term, signal.SIGTERM)
    if all_gone(grace):
        return "SIGTERM"
    send(procs, signal.SIGKILL)
    if not all_gone(KILL_WAIT):
        raise ProcessError(f"{name}: processes {[p.pid for p in procs if not _gone(p)]} survived SIGKILL")
    return "SIGKILL"


def _gone(proc: Any) -> bool:
    import psutil

    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.AccessDenied:
        return False


# --------------------------------------------------------------------------- starting


def spawn(
    command: Command,
    *,
    log: Path | None = None,
    err_log: Path | None = None,
    name: str = "",
    ready_url: str | None = None,
) -> Process:
    """Start `command` in a new session (its own process group, so `cancel` reaches all it starts
    and a Ctrl-C of the caller's terminal does not). Output is appended to `log`, stderr to
    `err_log` if given (else to `log`); without a log it is discarded. Raises OSError when the
    program cannot be run."""
    with contextlib.ExitStack() as files:
        out: Any = files.enter_context(open(log, "ab")) if log else subprocess.DEVNULL
        err: Any = files.enter_context(open(err_log, "ab")) if err_log else subprocess.STDOUT if log else out
        popen = subprocess.Popen(
            command.argv, cwd=command.cwd, env=command.environ(), stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, start_new_session=True, close_fds=True,
        )  # fmt: skip
    # Popen returns after exec: the start time is the program's own.
    return Process(ProcessRef.of(popen.pid), popen, name=name or Path(command.argv[0]).name, log=log,
                   ready_url=ready_url)


def exec_command(command: Command) -> NoReturn:
    """Become `command` (the foreground server of `miniautoml serve`): this process is replaced."""
    if command.cwd is not None:
        os.chdir(command.cwd)
    os.execvpe(command.argv[0], command.argv, command.environ())


def wait_ready(processes: Sequence[Process], timeout: float) -> None:
    """Wait until every process answers its `ready_url` with 2xx, side by side. Raises
    ProcessError when one exits first (with the end of its log) or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pending = list(processes)
    while pending:
        for proc in list(pending):
            if not proc.running():
                tail = _tail(proc.log)
                raise ProcessError(
                    f"{proc.name} exited with code {proc.returncode} before it was ready; log {proc.log}"
                    + (f": {tail}" if tail else "")
                )
            if proc.ready_url is None or http_ok(proc.ready_url):
                pending.remove(proc)
        if pending and time.monotonic() >= deadline:
            names = ", ".join(f"{p.name} ({p.ready_url})" for p in pending)
            raise ProcessError(f"not ready within {timeout:g}s: {names}; logs in {pending[0].log}")
        if pending:
            time.sleep(0.1)


def _tail(path: Path | None, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines() if path else []
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])

# --------------------------------------------------------------------------- pid files

def write_pidfile(path: Path, process: Process, **fields: Any) -> dict[str, Any]:
    """Record `process` in the JSON file `path`: pid, start time (clock ticks since boot and
    seconds since the epoch), command line, then `fields`. Returns the record."""
    import psutil

    # A child not yet exec'd shows an empty or our own cmdline: the argv we gave is what it runs.
    spawned = [str(arg) for arg in process.popen.args] if process.popen is not None else []
    try:
        info = psutil.Process(process.pid)
        create_time, cmdline = info.create_time(), info.cmdline()
        if spawned and (not cmdline or cmdline == psutil.Process().cmdline()):
            cmdline = spawned
    except psutil.Error:  # exited at once: whoever waits for it reports that
        create_time, cmdline = 0.0, spawned
    record = {"pid": process.pid, "start": process.ref.start, "create_time": create_time, "cmdline": cmdline, **fields}
    atomic_write_json(path, record)
    return record


def read_pidfile(path: Path) -> dict[str, Any] | None:
    """The record in `path`; None when it is missing, torn or not a pid file."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record
