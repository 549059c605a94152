"""The `local` job backend: jobs run on this machine, launched by the workspace's runners
(jobs/runner.py) one `mlflow run` each, forked warm (jobs/warm.py) or as the `mlflow run` CLI.

`submit` wakes an idle runner or spawns one (at most `max_runners`, jobs/slots.py); a runner
`prepare`s and `start`s each job it claims, waits for it, and records its end from `exit_of`.
A job's files sit in `<ws>/.miniautoml/jobs/`: `<id>.out.log`, `<id>.err.log`, `<id>.exit` (the
trainer's shell status, written by the wrapper or the warm job process) and `<id>.storage/`.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from miniautoml.config import PROJECT_ROOT, Settings
from miniautoml.errors import UserInputError
from miniautoml.jobs import finish, outcome, slots, store, warm
from miniautoml.jobs.launch import LaunchSpec, child_command, launch_spec, read_status, trainer_wrapper
from miniautoml.processes import Command, Process, ProcessRef, spawn

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

LOCAL = "local"


def spawn_runner(settings: Settings) -> int:
    """Start a detached, supervised runner for the workspace (jobs/supervisor.py), in a session
    of its own: it survives the submitting shell's Ctrl-C and exit. Returns the supervisor's pid."""
    argv = [sys.executable, "-m", "miniautoml.jobs", "runner", "--workspace", str(settings.workspace)]
    return spawn(child_command(settings, argv, settings.workspace), log=store.logs_dir(settings) / "runner.log").pid


def ensure_runner(settings: Settings) -> int | None:
    """Wake idle runners and spawn one if a slot is free (jobs may be waiting). Returns the new
    pid or None."""
    count = slots.max_runners(settings)
    if count == 0:
        return None
    slots.wake_runners(settings)
    if not slots.free_slot(settings, count):
        return None
    return spawn_runner(settings)


@dataclass(frozen=True)
class JobFiles:
    """Where a local job's output and leftovers go."""

    out: Path
    err: Path
    exit: Path  # the trainer's shell status (128+N: killed by signal N)
    storage: Path  # `mlflow run --storage-dir`

    @classmethod
    def of(cls, settings: Settings, run_id: str) -> "JobFiles":
        logs = store.logs_dir(settings)
        return cls(logs / f"{run_id}.out.log", logs / f"{run_id}.err.log", logs / f"{run_id}.exit",
                   logs / f"{run_id}.storage")


@dataclass(frozen=True)
class Launch:
    """A claimed job ready to start: its `mlflow run`, as a command (cold) or forked (warm)."""

    run_id: str
    spec: LaunchSpec
    command: Command
    files: JobFiles
    warm: bool


class LocalBackend:
    """Jobs run by this workspace's runners (jobs/backends JobBackend)."""

    name = LOCAL

    def __init__(self, settings: Settings, client: "MlflowClient | None" = None):
        self.settings = settings
        from miniautoml.adapters import mlflow as mlflow_adapter

        self.mlflow: MlflowClient = client or mlflow_adapter.client(settings)

    # -- JobBackend ------------------------------------------------------------------------------
    def submit(self, run: "Run") -> None:
        """The job is queued (a SCHEDULED run): wake or start a runner for it, if a slot is free."""
        ensure_runner(self.settings)

    def status(self, run: "Run") -> "Run":
        """The run with what a dead runner left unrecorded recorded: a job that died with its
        runner is marked failed; one that ended on its own after its runner died is finalised
        (model version, exit code) here. One still training after its runner died needs a runner."""
        if store.orphaned(self.settings, run):
            return store.mark_orphan_failed(self.settings, self.mlflow, run)
        if (store.abandoned(self.settings, run) and run.info.status in store.MLFLOW_TERMINAL
                and not store.job_process_alive(self.settings, run)):
            if claim_abandoned(self.settings, self.mlflow, run.info.run_id, ProcessRef.of(os.getpid())) is not None:
                self.record_end(run.info.run_id, self.exit_of(run.info.run_id))
            return self.mlflow.get_run(run.info.run_id)
        return run

    def cancel(self, run_id: str) -> None:
        """Stop the job's process group here and now (a runner on another host stops it on its
        next poll of the cancel tag)."""
        process = ProcessRef.decode(store.read_record(self.settings, run_id).get(store.PROCESS))
        if process is not None:
            process.kill_group()

    def logs(self, run_id: str) -> str:
        """The job's stdout and stderr logs, as the runner wrote them."""
        record = store.read_record(self.settings, run_id)
        parts = []
        for key in (store.LOG_STDOUT, store.LOG_STDERR):
            path = record.get(key)
            if path and Path(path).is_file():
                parts.append(Path(path).read_text(encoding="utf-8", errors="replace"))
        if not parts:
            raise UserInputError(f"job {run_id}: no logs on this host (yet)")
        return "".join(parts)

    def outcome(self, run_id: str) -> outcome.Exit | None:
        """How the job's `mlflow run` ended; None while it runs here."""
        if store.job_process_alive(self.settings, self.mlflow.get_run(run_id)):
            return None
        return self.exit_of(run_id)

    # -- the runner's side -----------------------------------------------------------------------
    def prepare(self, run: "Run") -> Launch:
        """The claimed job's `mlflow run` with the trainer wrapper and the job's files
        (MiniAutoMLError when its request cannot be launched any more)."""
        run_id = run.info.run_id
        files = JobFiles.of(self.settings, run_id)
        files.exit.unlink(missing_ok=True)
        spec = launch_spec(run, files.storage)
        command = child_command(
            self.settings, spec.argv(), PROJECT_ROOT,
            MINIAUTOML_PYTHON=str(trainer_wrapper(self.settings)), MINIAUTOML_REAL_PYTHON=sys.executable,
            MINIAUTOML_EXIT_FILE=str(files.exit), MINIAUTOML_JOB_ID=run_id,
        )  # fmt: skip
        return Launch(run_id, spec, command, files, warm.ready())

    def start(self, launch: Launch, close_fds: Iterable[int] = ()) -> Process:
        """Start the job (OSError when it cannot); its process and logs go into its record.
        `close_fds`: the runner's own (its slot lock...), not for the job to hold."""
        run_id, files = launch.run_id, launch.files
        files.out.unlink(missing_ok=True)
        files.err.unlink(missing_ok=True)
        if launch.warm:
            job = warm.start_job(launch.spec, launch.command, files.out, files.err, close_fds=list(close_fds),
                                 on_trainer=lambda ref: self.record(run_id, **{warm.TRAINER: ref.encode()}),
                                 name=f"job {run_id}")  # fmt: skip
        else:
            job = spawn(launch.command, log=files.out, err_log=files.err, name=f"job {run_id}")
        self.record(run_id, **{store.PROCESS: job.ref.encode(), store.LOG_STDOUT: str(files.out),
                               store.LOG_STDERR: str(files.err)})  # fmt: skip
        return job

    def exit_of(self, run_id: str, returncode: int | None = None, stopped_by: int | None = None) -> outcome.Exit:
        """The `Exit` of the job's ended `mlflow run`, from its leftovers (which it removes):
        `returncode` when this process waited for it, else FINISHED means it exited 0."""
        files = JobFiles.of(self.settings, run_id)
        shutil.rmtree(files.storage, ignore_errors=True)
        trainer_status = read_status(files.exit)
        files.exit.unlink(missing_ok=True)
        if returncode is None:  # `mlflow run`'s own exit code died with its runner
            finished = self.mlflow.get_run(run_id).info.status == "FINISHED"
            returncode = 0 if finished and stopped_by is None else 1
        return outcome.Exit(returncode, trainer_status, stopped_by)

    def record_end(self, run_id: str, exit: outcome.Exit) -> str:
        """Record the job's end (jobs/finish.py); returns the MLflow status it ends with."""
        err = store.read_record(self.settings, run_id).get(store.LOG_STDERR)
        return finish.finish(self.settings, self.mlflow, run_id, exit, Path(err) if err else JobFiles.of(self.settings, run_id).err)

    def record(self, run_id: str, **fields: str) -> None:
        """Add to the job's record; locked, as a warm job's own process writes to it too."""
        with store.queue_lock(self.settings):
            store.update_record(self.settings, run_id, **fields)


def claim_abandoned(settings: Settings, client: "MlflowClient", run_id: str, me: ProcessRef) -> "Run | None":
    """Make `me` the runner of a job whose runner died; None if it is not abandoned (any more)."""
    with store.queue_lock(settings):
        run = client.get_run(run_id)
        if not store.abandoned(settings, run):
            return None
        store.update_record(settings, run_id, **{store.RUNNER: me.encode()})
        return run
