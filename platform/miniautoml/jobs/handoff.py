"""A submission handed to an idle warm runner, so that `train submit` imports no MLflow.

Importing MLflow and its SQLAlchemy store is most of a submit's CPU (about 3 s); a runner waiting
idle (jobs/slots.py's wake FIFO) has both loaded. While it waits it holds an flock on
`runners/idle-<pid>`. Submit, seeing one, writes the job's tags to `runners/inbox/<ns>-<pid>.json`
(names sort in submit order), wakes the runners and reads the run id back from its own reply FIFO.
A runner claims a request by renaming it, submit withdraws one by deleting it: exactly one of the
two wins, so a request no runner took in time is queued by submit itself, and never twice.
"""

from __future__ import annotations

import json
import logging
import os
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from miniautoml.config import Settings
from miniautoml.errors import MiniAutoMLError
from miniautoml.jobs import slots as slots_mod
from miniautoml.jobs import store

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("miniautoml.jobs.handoff")
OFFER_SECONDS = 2.0  # an idle runner answers well within this; else submit queues the job itself
CLAIMED_SECONDS = 120.0  # a claimed request's run is being created: its id comes


def _folder(settings: Settings, name: str) -> Path:
    path = settings.state_dir / "runners" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def idle(settings: Settings) -> Iterator[None]:
    """Mark this runner as waiting for submissions (the flock drops with the process, even on SIGKILL)."""
    path = settings.state_dir / "runners" / f"idle-{os.getpid()}"
    fh = slots_mod.try_lock(path)
    try:
        yield
    finally:
        if fh is not None:
            path.unlink(missing_ok=True)
            fh.close()


def idle_runner(settings: Settings) -> bool:
    """Whether some runner of the workspace waits idle now."""
    folder = settings.state_dir / "runners"
    for path in folder.glob("idle-*") if folder.is_dir() else []:
        fh = slots_mod.try_lock(path)
        if fh is None:
            return True
        fh.close()  # a runner that died idle left it
    return False


def offer(settings: Settings, tags: dict[str, str]) -> str | None:
    """The id of the run an idle runner queued with `tags`, or None (nothing queued) if none took it."""
    if not idle_runner(settings):
        return None
    inbox = _folder(settings, "inbox")
    name = f"{time.time_ns():020d}-{os.getpid()}"
    request, reply = inbox / f"{name}.json", inbox / f"{name}.reply"
    os.mkfifo(reply, 0o600)
    fd = os.open(reply, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)  # read-write: no EOF before the answer
    try:
        from miniautoml.files import atomic_write_json

        atomic_write_json(request, {"tags": tags}, 0o600)
        answer = _read_answer(fd, OFFER_SECONDS) if slots_mod.wake_runners(settings) else None
        if answer is None:
            try:
                request.unlink()
                return None  # withdrawn before any runner claimed it
            except FileNotFoundError:
                answer = _read_answer(fd, CLAIMED_SECONDS)
        if answer is None:
            raise MiniAutoMLError(f"a runner took the job but sent no id back in {CLAIMED_SECONDS:.0f} s; "
                                  "see `miniautoml train list`")
        return answer.get("run_id")  # None: the runner could not create it, submit tries itself
    finally:
        request.unlink(missing_ok=True)
        os.close(fd)
        reply.unlink(missing_ok=True)


def _read_answer(fd: int, timeout: float) -> dict | None:
    deadline, data = time.monotonic() + timeout, b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            ready, _, _ = select.select([fd], [], [], left)
        except InterruptedError:
            continue
        if ready:
            try:
                data += os.read(fd, 4096)
            except BlockingIOError:
                pass
    return json.loads(data)


def take_requests(settings: Settings, client: "MlflowClient", experiment_id: str) -> int:
    """Queue the job of each waiting request, oldest first, and send each submitter its id."""
    inbox = settings.state_dir / "runners" / "inbox"
    taken = 0
    for request in sorted(inbox.glob("*.json")) if inbox.is_dir() else []:
        claimed = request.with_suffix(".claimed")
        try:
            request.rename(claimed)
        except FileNotFoundError:
            continue  # withdrawn, or another runner's
        try:
            answer = {"run_id": store.create_job(settings, client, experiment_id, json.loads(claimed.read_text())["tags"])}
            taken += 1
        except Exception as exc:  # the submitter queues it itself, and reports what fails
            log.warning("submission %s: %s: %s", request.stem, type(exc).__name__, exc)
            answer = {"error": str(exc)}
        finally:
            claimed.unlink(missing_ok=True)
        _send(request.with_suffix(".reply"), answer)
    return taken


def _send(reply: Path, answer: dict) -> None:
    try:
        fd = os.open(reply, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:  # the submitter is gone (its job stays queued)
        log.warning("submission %s: no one to answer (%s)", reply.stem, exc.strerror)
        return
    try:
        os.write(fd, json.dumps(answer).encode() + b"\n")
    finally:
        os.close(fd)
