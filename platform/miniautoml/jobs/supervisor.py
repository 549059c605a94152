"""The runner's supervisor: what `spawn_runner` starts, and what forks the runner.

A runner that dies by a signal nobody sent to stop it (SIGKILL, the OOM killer, a crash) is
replaced at once. The kernel dropped the dead runner's slot flock with it (jobs/slots.py); the
supervisor takes the slot again and forks a new runner, which follows the job the dead one left
training to its end (or records it failed if it died too), then goes on with the queue: the queue
moves on with no further command. A runner that exits on its own (queue drained and idle, told to
stop, a setting it refuses) ends its supervisor with its exit code; so does a runner that keeps
dying (`MAX_RESTARTS` a minute).

Why a parent and not a peer: with `max_runners = 1` there is no peer to take over, and a parent
learns of the death from `waitpid` the moment it happens, with no polling. Why a fork: the
supervisor preloads what a runner imports (MLflow, the trainer, jobs/warm.py) once, so a new
runner is serving within a second of the old one's death instead of after seconds of imports,
and still starts its jobs warm. The supervisor never opens the tracking store and holds no job;
it holds the slot only until its runner has it. SIGKILLing it leaves its runner serving, and once
that runner is gone the next `submit` or `status` starts a supervised one, as before.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
import time
import traceback
from typing import IO

from miniautoml.config import Settings, load_settings
from miniautoml.errors import MiniAutoMLError
from miniautoml.jobs import slots as slots_mod
from miniautoml.jobs import warm
from miniautoml.processes import signal_name
from miniautoml.proctitle import set_title

log = logging.getLogger("miniautoml.jobs.supervisor")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # asked to stop: forwarded, not replaced
MAX_RESTARTS = 5  # runners replaced within RESTART_WINDOW seconds before giving up
RESTART_WINDOW = 60.0
TITLE = "miniautoml runner-supervisor"


def supervise(workspace: str | None, slots: int | None = None) -> int:
    """Run the runner, replacing it whenever it dies by an unasked-for signal; returns the exit
    code of the last one (128+N for a signal N)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor[%(process)d] %(levelname)s %(message)s")
    try:
        settings = load_settings(workspace)
        count = slots if slots is not None else max(1, slots_mod.max_runners(settings))
    except MiniAutoMLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    set_title(f"{TITLE} {settings.workspace}")
    # The slot first: until a runner holds it, `submit`/`wait` see it free and spawn more runners.
    slot = slots_mod.acquire_slot(settings, count)
    if slot is None:
        log.info("all %d runner slot(s) taken; exiting", count)
        return 0
    if warm.enabled():  # holding the slot: a submit meanwhile starts no other runner
        warm.preload()
    from miniautoml.adapters import mlflow as mlflow_adapter
    from miniautoml.jobs import runner  # noqa: F401 - what a runner imports before it serves

    for name in mlflow_adapter.CLIENT_MODULES:  # its client's store: none of it again per fork
        with contextlib.suppress(ImportError):
            importlib.import_module(name)

    gc.freeze()  # what is loaded now stays shared with each forked runner, not copied by the GC
    stopping: list[int] = []
    child = 0

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)
        if child:
            os.kill(child, signum)  # the runner stops its job and exits: so do we

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    restarts: list[float] = []
    while True:
        child = _fork_runner(settings, count, slot)
        slot.close()  # the runner holds the slot now; its death frees it
        if stopping:  # a stop that came while it was forked
            os.kill(child, stopping[0])
        rc = _wait(child)
        if stopping or rc >= 0 or -rc in STOP_SIGNALS:
            return rc if rc >= 0 else 128 - rc
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
        if len(restarts) > MAX_RESTARTS:
            log.error("runner pid %d killed by %s; %d runners died within %gs: not starting another",
                      child, signal_name(rc), len(restarts), RESTART_WINDOW)
            return 128 - rc
        log.warning("runner pid %d killed by %s; starting another for the queue", child, signal_name(rc))
        slot = slots_mod.acquire_slot(settings, count)
        if slot is None:
            log.info("all %d runner slot(s) taken; exiting", count)
            return 0


def _wait(pid: int) -> int:
    """The exit code of child `pid` (negative: the signal that killed it)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 1
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            return os.waitstatus_to_exitcode(status)


def _fork_runner(settings: Settings, slots: int, slot: IO[str]) -> int:
    """Fork the runner, holding `slot`; returns its pid."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the runner: never returns
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)  # the runner sets its own for TERM and INT
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)  # the runner logs as runner[pid]
        from miniautoml.jobs import runner

        runner.main(settings, slots, slot=slot)
        code = 0
    except MiniAutoMLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except BaseException:  # noqa: BLE001 - as an uncaught error ends a process
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)
