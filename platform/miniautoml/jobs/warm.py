"""Warm job start: the runner imports what `mlflow run` and the trainer import once, then forks.

A cold job pays two interpreter start-ups (`mlflow run`, then `python -m training_code.train`),
each importing MLflow, and the trainer torch and Hydra: seconds before the run is RUNNING. Here
the runner preloads those modules and, per job, forks:

- the job process (in `mlflow run`'s place: leader of its own session and process group, stdout
  and stderr to the job's logs, the job's environment and cwd), which calls the MLflow Projects
  API as `mlflow run` does (`mlflow.projects.run(..., run_id=ID, synchronous=True)`: the
  Project's tags, entry-point params, FINISHED/FAILED when the command ends);
- for the entry point's command `${MINIAUTOML_PYTHON:-python} -m training_code.train ARGS`, the
  trainer as a fork of the job process that runs the module as `__main__` with those ARGS, the
  run's environment (MLFLOW_RUN_ID, ...) and cwd, as the shell would have; the job process
  records its exit status like the runner's wrapper script. Any other command goes to the shell.

Each fork starts from the runner's state, which never trains: no job sees another's MLflow
active run, environment, cwd, argv or Hydra state; each gets fresh database connections.
`MINIAUTOML_WARM_START=0` (or code changed since the runner preloaded it) starts jobs cold.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

from miniautoml.adapters import mlflow as mlflow_adapter
from miniautoml.compat import mlflow as compat_mlflow
from miniautoml.compat import python as compat_python
from miniautoml.config import PROJECT_ROOT
from miniautoml.contract.trainer import TRAINER_MODULE, WARM_IMPORTS_ATTR
from miniautoml.jobs.launch import LaunchSpec
from miniautoml.processes import Command, Process, ProcessRef
from miniautoml.proctitle import set_title

log = logging.getLogger("miniautoml.jobs.warm")

WARM_ENV = "MINIAUTOML_WARM_START"
TRAINER = "trainer"  # the job record's key for the trainer process (a fork: named by the record)
# What the job process and the trainer import before the run is RUNNING; then the trainer's own
# lazy imports (its WARM_IMPORTS_ATTR).
PRELOAD = (*mlflow_adapter.PROJECT_MODULES, "hydra", TRAINER_MODULE)
_OUR_PACKAGES = (TRAINER_MODULE.partition(".")[0], __name__.partition(".")[0])  # their edits end warm starts
_COMMAND_PYTHON = ("${MINIAUTOML_PYTHON:-python}", "$MINIAUTOML_PYTHON", "python")
_SHELL_SPECIAL = set("$`\\\"|&;<>(){}*?[]~#\n")
_loaded: dict[str, int] | None = None  # our modules' files and mtimes when preloaded


def enabled() -> bool:
    """Warm starts are on (the default) and the patches a fork needs are in their pinned versions."""
    if os.environ.get(WARM_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return compat_mlflow.CLIENT_STATE.applies() and compat_python.FINALIZE.applies()


def _loaded_code() -> dict[str, int]:
    """Our modules this process has loaded (the trainer's, the platform's): file -> mtime."""
    found = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and name.partition(".")[0] in _OUR_PACKAGES:
            with contextlib.suppress(OSError):
                found[path] = os.stat(path).st_mtime_ns
    return found


def preload() -> bool:
    """Import the job's and trainer's modules into this process; False (jobs start cold) on failure."""
    global _loaded
    if _loaded is not None:  # a supervised runner: its supervisor preloaded (and noted the code's mtimes)
        return True
    start = time.perf_counter()
    try:
        for name in PRELOAD:
            importlib.import_module(name)
        for name in getattr(sys.modules[TRAINER_MODULE], WARM_IMPORTS_ATTR, ()):
            importlib.import_module(name)
    except Exception as exc:  # e.g. a broken install: the cold path reports it per job
        log.warning("warm start off: importing the trainer failed: %s: %s", type(exc).__name__, exc)
        return False
    _loaded = _loaded_code()
    log.info("preloaded the trainer in %.1fs", time.perf_counter() - start)
    return True


def ready() -> bool:
    """Jobs can start warm: preloaded, and none of the loaded code was edited since."""
    if _loaded is None:
        return False
    for path, mtime in _loaded.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return False
        except OSError:
            return False
    return True


# --- the runner's side --------------------------------------------------------------------------
def start_job(
    spec: LaunchSpec,
    command: Command,
    out_path: Path,
    err_path: Path,
    *,
    close_fds: Iterable[int],
    on_trainer: Callable[[ProcessRef], None],
    name: str,
) -> Process:
    """Fork the job that `command` (`spec.argv()`) would run; returns its handle. `close_fds`
    (the runner's slot lock, ...) are closed in the child; `on_trainer` runs in the job process
    once the trainer is forked."""
    env, cwd = command.environ(), Path(command.cwd or PROJECT_ROOT)
    _flush()
    pid = os.fork()
    if pid == 0:  # the job process: never returns
        code = 1
        try:
            _become_job(out_path, err_path, list(close_fds), env, cwd)
            set_title(f"miniautoml job {spec.run_id}")  # else it shows as the runner in ps
            code = _run_project(spec, on_trainer)
        except BaseException:  # noqa: BLE001 - like an uncaught error in `mlflow run`
            traceback.print_exc()
        _exit(code)
    return Process(ProcessRef.of(pid), Forked(pid, command.argv), name=name)


class Forked:
    """A forked child as `subprocess.Popen` shows one (pid, poll, wait, returncode, signals), for
    `Process` and MLflow's `LocalSubmittedRun`. `exit_file` gets its shell exit status."""

    def __init__(self, pid: int, args: list[str], exit_file: str | None = None):
        self.pid, self.args, self.exit_file = pid, args, exit_file
        self.returncode: int | None = None

    def _reaped(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
        if self.exit_file:
            shell = 128 - self.returncode if self.returncode < 0 else self.returncode
            with contextlib.suppress(OSError):
                Path(self.exit_file).write_text(f"{shell}\n")

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: the code is lost
                self.returncode = 1
                return self.returncode
            if pid:
                self._reaped(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            while self.returncode is None:
                try:
                    _, status = os.waitpid(self.pid, 0)
                except ChildProcessError:
                    self.returncode = 1
                    break
                self._reaped(status)
            return self.returncode
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


# --- in the job process ---------------------------------------------------------------------------
def _become_job(out_path: Path, err_path: Path, close_fds: list[int], env: dict[str, str], cwd: Path) -> None:
    """What `spawn` gives a job: a session of its own, /dev/null in, logs out, its env and cwd."""
    os.setsid()
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND),
                            (2, err_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)):  # fmt: skip
        new = os.open(path, flags, 0o644)
        os.dup2(new, fd)
        os.close(new)
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _fresh_process(env, cwd)


def _fresh_process(env: dict[str, str], cwd: Path) -> None:
    """This fork as a new process would start: default signals, `env`, `cwd`, no logging set up,
    MLflow reading its URIs from `env` over connections of its own, no Hydra state."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)

    mlflow_adapter.reset_after_fork()
    with contextlib.suppress(ImportError):
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()


def _run_project(spec: LaunchSpec, on_trainer: Callable[[ProcessRef], None]) -> int:
    """`mlflow run`'s body: the Projects API, with the trainer forked instead of exec'd."""
    starter = compat_mlflow.Starter(
        claims=lambda command: trainer_args(command) is not None,
        start=lambda command, work_dir, env: _fork_trainer(trainer_args(command) or [], env, Path(work_dir), on_trainer),
    )
    return mlflow_adapter.run_project(spec.project_args(), starter)


def trainer_args(command: str) -> list[str] | None:
    """ARGS of an entry point command `<python> -m training_code.train ARGS` whose ARGS the shell
    would only unquote; None for any other command."""
    for python in _COMMAND_PYTHON:
        prefix = f"{python} -m {TRAINER_MODULE}"
        if command == prefix or command.startswith(prefix + " "):
            rest = command[len(prefix):]
            unquoted = "".join(rest.split("'")[::2])  # outside single quotes
            if "'" in rest and rest.count("'") % 2 or _SHELL_SPECIAL & set(unquoted):
                return None
            return shlex.split(rest)
    return None


def _fork_trainer(args: list[str], env: dict[str, str], work_dir: Path, on_trainer: Callable[[ProcessRef], None]) -> Forked:
    """The trainer `python -m training_code.train ARGS` as a fork of this job process."""
    _flush()
    pid = os.fork()
    if pid == 0:  # the trainer: never returns
        code = 1
        try:
            code = _run_trainer(args, env, work_dir)
        except BaseException:  # noqa: BLE001 - as Python reports an uncaught error
            traceback.print_exc()
        _exit(code)
    try:
        on_trainer(ProcessRef.of(pid))
    except Exception as exc:  # bookkeeping: never fail the job for it
        log.warning("could not record the trainer process: %s", exc)
    exit_file = os.environ.get("MINIAUTOML_EXIT_FILE")
    return Forked(pid, [sys.executable, "-m", TRAINER_MODULE, *args], exit_file)


# --- in the trainer -------------------------------------------------------------------------------
def _run_trainer(args: list[str], env: dict[str, str], work_dir: Path) -> int:
    """`python -m training_code.train ARGS` in `work_dir` with `env`; returns its exit status."""
    import runpy

    _fresh_process(env, work_dir)
    sys.argv = ["-m", *args]
    sys.path[0] = str(work_dir)  # `python -m` puts the working directory first
    sys.modules.pop(TRAINER_MODULE, None)  # `-m` runs a fresh copy as __main__; its imports stay warm
    try:
        runpy.run_module(TRAINER_MODULE, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _exit(code: int) -> NoReturn:
    """End a fork as an interpreter ends: its threads joined, exit handlers run (MLflow's end of
    an open run, logging's flush), streams flushed; never back into the runner's code."""
    try:
        compat_python.finalize()
    finally:
        _flush()
        os._exit(code & 0xFF if code >= 0 else 1)
