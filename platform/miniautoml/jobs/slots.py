"""Runner slots: at most `max_runners` runners per workspace, each holding an flock on a slot file.

A slot file lives in `<ws>/.miniautoml/runners/`; the kernel drops a dead runner's flock at once
(even after SIGKILL), so a free slot is exactly a slot no live runner holds.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from miniautoml.config import CONFIG_FILE, Settings
from miniautoml.errors import UserInputError
from miniautoml.processes import ProcessRef

MAX_RUNNERS_ENV = "MINIAUTOML_MAX_RUNNERS"
DEFAULT_MAX_RUNNERS = 1


def max_runners(settings: Settings) -> int:
    """Concurrent runners per workspace: $MINIAUTOML_MAX_RUNNERS, else `[jobs] max_runners` in
    miniautoml.toml, else 1. 0 queues jobs without launching them (start one with `train runner`)."""
    raw = os.environ.get(MAX_RUNNERS_ENV)
    source = MAX_RUNNERS_ENV
    if raw in (None, ""):
        from miniautoml.config import file_settings

        raw = file_settings(settings.workspace).get("jobs", {}).get("max_runners", DEFAULT_MAX_RUNNERS)
        source = f"{CONFIG_FILE} [jobs] max_runners"
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise UserInputError(f"{source}={raw!r}: expected a whole number >= 0") from None
    if value < 0:
        raise UserInputError(f"{source}={raw!r}: expected a whole number >= 0")
    return value


def _slot_path(settings: Settings, slot: int) -> Path:
    path = settings.state_dir / "runners"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"slot-{slot}.lock"


def _try_lock(path: Path) -> IO[str] | None:
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
        fh = _try_lock(_slot_path(settings, slot))
        if fh is not None:
            fh.seek(0)
            fh.truncate()
            fh.write(ProcessRef.of(os.getpid()).encode())
            fh.flush()
            return fh
    return None


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
        fh = _try_lock(path)
        if fh is not None:
            release_slot(fh)
            continue
        ref = ProcessRef.decode(path.read_text().strip())
        found.append(ref or ProcessRef(pid=0))
    return found


def free_slot(settings: Settings, slots: int) -> bool:
    for slot in range(slots):
        fh = _try_lock(_slot_path(settings, slot))
        if fh is not None:
            fh.close()  # closing drops the flock
            return True
    return False
