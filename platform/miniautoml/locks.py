"""Cross-process exclusive locks on files (flock): released by the kernel if a holder dies."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import time
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(
    path: Path, timeout: float | None = None, busy: Callable[[], Exception] | None = None, poll: float = 0.05
) -> Iterator[None]:
    """Hold an exclusive lock on `path`; wait forever (timeout None) or raise `busy()` after timeout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise (busy() if busy else TimeoutError(f"{path} is locked")) from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
