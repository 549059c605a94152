"""Runner slots: at most `max_runners` runners per workspace, each holding an flock on a slot file.

A slot file lives in `<ws>/.miniautoml/runners/`; the kernel drops a dead runner's flock at once
(even after SIGKILL), so a free slot is exactly a slot no live runner holds.

A runner whose queue ran dry stays for `runner_idle_seconds`, warm, waiting on the FIFO
`runners/wake`: `submit` writes a byte to it, so the next job starts without a new runner.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
from pathlib import Path
from typing import IO

from miniautoml.config import Setting, Settings
from miniautoml.errors import UserInputError
from miniautoml.processes import ProcessRef

MAX_RUNNERS_ENV = "MINIAUTOML_MAX_RUNNERS"
DEFAULT_MAX_RUNNERS = 1
IDLE_ENV = "MINIAUTOML_RUNNER_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 60.0
MAX_RUNNERS = Setting("jobs", "max_runners", (MAX_RUNNERS_ENV,), DEFAULT_MAX_RUNNERS)
IDLE_SECONDS = Setting("jobs", "runner_idle_seconds", (IDLE_ENV,), DEFAULT_IDLE_SECONDS)


def max_runners(settings: Settings) -> int:
    """Concurrent runners per workspace: $MINIAUTOML_MAX_RUNNERS, else `[jobs] max_runners` in
    miniautoml.toml, else 1. 0 queues jobs without launching them (start one with `train runner`)."""
    found = settings.get(MAX_RUNNERS)
    raw, source = found.value, found.source
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise UserInputError(f"{source}={raw!r}: expected a whole number >= 0") from None
    if value < 0:
        raise UserInputError(f"{source}={raw!r}: expected a whole number >= 0")
    return value


def idle_seconds(settings: Settings) -> float:
    """How long a runner waits for new jobs once the queue is empty: $MINIAUTOML_RUNNER_IDLE_SECONDS,
    else `[jobs] runner_idle_seconds` in miniautoml.toml, else 60. 0: exit at once."""
    found = settings.get(IDLE_SECONDS)
    raw, source = found.value, found.source
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UserInputError(f"{source}={raw!r}: expected a number of seconds >= 0") from None
    if not value >= 0 or value == float("inf"):
        raise UserInputError(f"{source}={raw!r}: expected a number of seconds >= 0")
    return value


def _slot_path(settings: Settings, slot: int) -> Path:
    path = settings.state_dir / "runners"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"slot-{slot}.lock"


def try_lock(path: Path) -> IO[str] | None:
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def acquire_slot(settings: Settings, slots: int) -> IO[str] | None:
    """Hold a free runner slot (the open, locked file) or None if all `slots` are taken."""
    for slot in range(slots):
        fh = try_lock(_slot_path(settings, slot))
        if fh is not None:
            return own_slot(fh)
    return None


def own_slot(fh: IO[str]) -> IO[str]:
    """Name this process as the holder of slot `fh` (e.g. a runner forked holding its
    supervisor's slot): `live_runners` and `stop_runners` see it."""
    fh.seek(0)
    fh.truncate()
    fh.write(ProcessRef.of(os.getpid()).encode())
    fh.flush()
    return fh


def release_slot(fh: IO[str]) -> None:
    try:
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


def live_runners(settings: Settings) -> list[ProcessRef]:
    """Runners holding a slot now (any slot file, whatever the current limit)."""
    found = []
    folder = settings.state_dir / "runners"
    for path in sorted(folder.glob("slot-*.lock")) if folder.is_dir() else []:
        fh = try_lock(path)
        if fh is not None:
            release_slot(fh)
            continue
        ref = ProcessRef.decode(path.read_text().strip())
        found.append(ref or ProcessRef(pid=0))
    return found


def free_slot(settings: Settings, slots: int) -> bool:
    for slot in range(slots):
        fh = try_lock(_slot_path(settings, slot))
        if fh is not None:
            fh.close()  # closing drops the flock
            return True
    return False


# --- waking an idle runner --------------------------------------------------------------------
def _wake_path(settings: Settings) -> Path:
    path = settings.state_dir / "runners"
    path.mkdir(parents=True, exist_ok=True)
    return path / "wake"


def open_wake(settings: Settings) -> int | None:
    """The wake FIFO, opened by a runner for reading (and writing, so it never sees EOF); None
    where FIFOs are not supported (the runner then exits when idle, as without one)."""
    path = _wake_path(settings)
    try:
        if not path.exists():
            os.mkfifo(path, 0o600)
        if not stat.S_ISFIFO(path.stat().st_mode):
            return None
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileExistsError:  # another runner made it first
        return open_wake(settings)
    except OSError:
        return None


def wake_runners(settings: Settings) -> bool:
    """Tell idle runners that jobs wait; False if no runner listens."""
    path = settings.state_dir / "runners" / "wake"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # ENXIO: no runner has it open; ENOENT: none ever did
        return False
    try:
        os.write(fd, b"w")
    except OSError as exc:  # EAGAIN: the pipe is full of wake-ups already
        return exc.errno == errno.EAGAIN
    finally:
        os.close(fd)
    return True


def wait_wake(fd: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for a wake-up; True if one came (all pending ones are read)."""
    try:
        ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    except InterruptedError:
        return True
    if not ready:
        return False
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
    return True
