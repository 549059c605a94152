"""Process identity and liveness, robust to pid reuse (a pid is paired with its start time)."""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after its closing ')'.
    return text[text.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" where /proc is unavailable)."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else ""


@dataclass(frozen=True)
class ProcessRef:
    """A process on a host: `pid` plus its start time, so a recycled pid is not mistaken for it."""

    pid: int
    start: str = ""
    host: str = ""

    @classmethod
    def of(cls, pid: int) -> "ProcessRef":
        return cls(pid=pid, start=start_ticks(pid), host=socket.gethostname())

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
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
