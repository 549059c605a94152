"""The runner: a detached process that drains the job queue, one `mlflow run` at a time.

At most `max_runners` runners live per workspace; each holds an flock on a slot file in
`<ws>/.miniautoml/runners/`, so a runner that dies (even SIGKILLed) frees its slot at once.
`submit` wakes an idle runner and spawns one when a slot is free; a runner exits when the queue
has stayed empty for `runner_idle_seconds`. A runner preloads the trainer and forks each job
(jobs/warm.py); `MINIAUTOML_WARM_START=0` launches the `mlflow run` CLI instead (cold).

Every job ends terminal: `mlflow run` marks FINISHED/FAILED when the trainer exits, and the
runner marks FAILED/KILLED (with the exit code or signal and the last stderr line) whenever the
run was left RUNNING or SCHEDULED, e.g. when the job's process group was SIGKILLed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from miniautoml.config import PROJECT_ROOT, Settings
from miniautoml.errors import MiniAutoMLError
from miniautoml.jobs import slots as slots_mod
from miniautoml.jobs import store, warm
from miniautoml.jobs.launch import child_command, launch_command, launch_spec, read_status, trainer_wrapper
from miniautoml.jobs.messages import failure_message
from miniautoml.jobs.slots import acquire_slot, free_slot, max_runners, release_slot
from miniautoml.processes import Process, ProcessRef, spawn
from miniautoml.redact import redact_text

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger("miniautoml.jobs.runner")

STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2
CANCEL_POLL_SECONDS = 2.0
IDLE_QUEUE_CHECK_SECONDS = 5.0  # an idle runner also looks at the queue itself (a missed wake-up)
__all__ = ["Runner", "ensure_runner", "launch_command", "main", "spawn_runner"]
_child_command = child_command  # the names tests and older callers use


def spawn_runner(settings: Settings) -> int:
    """Start a detached runner process for the workspace (a session of its own: it survives the
    submitting shell's Ctrl-C and exit); returns its pid."""
    argv = [sys.executable, "-m", "miniautoml.jobs", "runner", "--workspace", str(settings.workspace)]
    return spawn(child_command(settings, argv, settings.workspace), log=store.logs_dir(settings) / "runner.log").pid


def ensure_runner(settings: Settings) -> int | None:
    """Wake idle runners and spawn one if a slot is free (jobs may be waiting). Returns the new
    pid or None."""
    count = max_runners(settings)
    if count == 0:
        return None
    slots_mod.wake_runners(settings)
    if not free_slot(settings, count):
        return None
    return spawn_runner(settings)


class Runner:
    def __init__(self, settings: Settings):
        from miniautoml.adapters import mlflow as mlflow_adapter

        self.settings = settings
        self.wrapper = trainer_wrapper(settings)
        self.client: MlflowClient = mlflow_adapter.client(settings)
        self.experiment_id = mlflow_adapter.ensure_experiment(settings)
        self.me = ProcessRef.of(os.getpid())
        self.stop_signal: int | None = None
        self.slot: IO[str] | None = None
        self.wake_fd: int | None = None

    # -- queue ---------------------------------------------------------------------------------
    def claim_next(self) -> "Run | None":
        with store.queue_lock(self.settings):
            for run in store.queued(self.client, self.experiment_id):
                # The record first: a claimed job without a runner in it would look hand-made.
                store.update_record(self.settings, run.info.run_id, **{
                    store.RUNNER: self.me.encode(), store.LAUNCHED_AT: store.now_iso(),
                })
                store.set_tags(self.client, run.info.run_id, {store.STATE: store.STATE_LAUNCH})
                return self.client.get_run(run.info.run_id)
        return None

    def reconcile_orphans(self) -> None:
        """Jobs left launched/running by a runner that died: mark them failed."""
        for status in ("RUNNING", "SCHEDULED"):
            for run in store.search_jobs(self.client, self.experiment_id, f"attributes.status = '{status}'"):
                if store.orphaned(self.settings, run):
                    log.warning("job %s: runner died; marking it failed", run.info.run_id)
                    store.mark_orphan_failed(self.settings, self.client, run)

    # -- jobs whose runner died ----------------------------------------------------------------
    def adopt_abandoned(self) -> int:
        """Take over jobs whose runner died (e.g. SIGKILLed) while their `mlflow run` went on:
        wait for each in this runner's slot, as its own runner would have, then record its end
        (model version, exit code). Returns how many were adopted."""
        adopted = 0
        launched = store.search_jobs(self.client, self.experiment_id, f"tags.`{store.STATE}` = '{store.STATE_LAUNCH}'")
        for run in launched:
            if self.stop_signal is not None:
                break
            if not store.abandoned(self.settings, run) or store.orphaned(self.settings, run):
                continue  # alive elsewhere, or for reconcile_orphans
            claimed = claim_abandoned(self.settings, self.client, run.info.run_id, self.me)
            if claimed is None:
                continue
            log.warning("job %s: its runner died; following it to its end", run.info.run_id)
            self.follow(claimed)
            adopted += 1
        return adopted

    def follow(self, run: "Run") -> str:
        """Wait for a job launched by another (dead) runner, honouring cancel and stop like
        `run_job`, then finalise it. Returns the MLflow status."""
        run_id = run.info.run_id
        record = store.read_record(self.settings, run_id)
        ref = ProcessRef.decode(record.get(store.PROCESS))
        stopped_by_runner = False
        if ref is not None and ref.alive() is True:  # seen alive: its group id is not yet anyone else's
            stopped_by_runner = self._watch(run_id, Process(ref, name=f"job {run_id}"))
        logs = store.logs_dir(self.settings)
        shutil.rmtree(logs / f"{run_id}.storage", ignore_errors=True)
        status_file = logs / f"{run_id}.exit"
        trainer_status = read_status(status_file)
        status_file.unlink(missing_ok=True)
        # `mlflow run`'s own exit code died with its runner: FINISHED means it exited 0.
        mlflow_status = self.client.get_run(run_id).info.status
        rc = 0 if mlflow_status == "FINISHED" and not stopped_by_runner else 1
        err_path = Path(record.get(store.LOG_STDERR) or logs / f"{run_id}.err.log")
        return self.finalise(run_id, rc, err_path, stopped_by_runner, trainer_status)

    # -- one job -------------------------------------------------------------------------------
    def run_job(self, run: "Run") -> str:
        """Launch one claimed job, wait for it, leave it terminal. Returns the MLflow status."""
        run_id = run.info.run_id
        logs = store.logs_dir(self.settings)
        out_path, err_path = logs / f"{run_id}.out.log", logs / f"{run_id}.err.log"
        storage = logs / f"{run_id}.storage"
        status_file = logs / f"{run_id}.exit"
        status_file.unlink(missing_ok=True)
        try:
            spec = launch_spec(run, storage)
        except MiniAutoMLError as exc:  # e.g. its algorithm's declaration was removed since submit
            return self.fail(run_id, f"could not launch: {exc}")
        command = child_command(
            self.settings, spec.argv(), PROJECT_ROOT,
            MINIAUTOML_PYTHON=str(self.wrapper), MINIAUTOML_REAL_PYTHON=sys.executable,
            MINIAUTOML_EXIT_FILE=str(status_file), MINIAUTOML_JOB_ID=run_id,
        )  # fmt: skip
        warm_start = warm.ready()
        log.info("job %s (%s): %s", run_id, "warm" if warm_start else "cold", redact_text(" ".join(command.argv)))
        if self._cancel_requested(run_id):
            return self.fail(run_id, "cancelled before launch", "KILLED")
        out_path.unlink(missing_ok=True)
        err_path.unlink(missing_ok=True)
        try:
            if warm_start:
                held = [fd for fd in (self.wake_fd, self.slot.fileno() if self.slot else None) if fd is not None]
                job = warm.start_job(spec, command, out_path, err_path, close_fds=held,
                                     on_trainer=lambda ref: self._record(run_id, **{warm.TRAINER: ref.encode()}),
                                     name=f"job {run_id}")  # fmt: skip
            else:
                job = spawn(command, log=out_path, err_log=err_path, name=f"job {run_id}")
        except OSError as exc:
            return self.fail(run_id, f"could not start mlflow run: {exc}")
        self._record(run_id, **{
            store.PROCESS: job.ref.encode(), store.LOG_STDOUT: str(out_path), store.LOG_STDERR: str(err_path),
        })  # fmt: skip
        stopped_by_runner = self._watch(run_id, job)
        rc = job.returncode
        assert rc is not None  # our child, waited for
        shutil.rmtree(storage, ignore_errors=True)
        trainer_status = read_status(status_file)
        status_file.unlink(missing_ok=True)
        return self.finalise(run_id, rc, err_path, stopped_by_runner, trainer_status)

    def _watch(self, run_id: str, job: Process) -> bool:
        """Wait for the job's `mlflow run` to end; stop its process group (SIGTERM, SIGKILL after a
        grace period) when this runner is told to stop or the job is cancelled. Returns whether
        the runner stopped it."""
        stopped_by_runner = cancelled = False
        next_cancel_check = 0.0  # at once: a cancel may have come between the claim and now
        while not job.wait(POLL_SECONDS):
            if self.stop_signal is not None and not stopped_by_runner:
                stopped_by_runner = True
                job.cancel(STOP_GRACE_SECONDS)
            # `train cancel` signals the job itself on this host; the tag reaches us from anywhere.
            if not cancelled and time.monotonic() >= next_cancel_check:
                next_cancel_check = time.monotonic() + CANCEL_POLL_SECONDS
                if self._cancel_requested(run_id):
                    cancelled = True
                    job.cancel(STOP_GRACE_SECONDS)
        job.kill_group(signal.SIGKILL)  # a trainer outliving its `mlflow run`
        return stopped_by_runner

    def finalise(
        self, run_id: str, rc: int, err_path: Path, stopped_by_runner: bool = False, trainer_status: int | None = None
    ) -> str:
        run = self.client.get_run(run_id)
        tags = run.data.tags
        status = run.info.status
        cancelled = tags.get(store.CANCEL) == "1"
        final: dict[str, str] = {store.EXIT_CODE: str(rc if trainer_status is None else trainer_status)}
        if rc == 0 and status in ("FINISHED", "RUNNING", "SCHEDULED") and not cancelled:
            if status != "FINISHED":
                self.client.set_terminated(run_id, "FINISHED")
            model_name = tags.get(store.MODEL_NAME)
            if model_name:  # the trainer registers the model; the job record names the version
                from miniautoml import registry

                try:
                    version = registry.registered_version(self.settings, run_id, model_name)
                except Exception as exc:  # the job's contract includes the registered model
                    log.exception("job %s: reading the model version failed", run_id)
                    version, problem = None, f"could not read the registered version of {model_name!r}: {exc}"
                else:
                    problem = f"training finished but registered no version of model {model_name!r}"
                if version is not None:
                    final[store.MODEL_VERSION] = version.version
                else:
                    final[store.MESSAGE] = problem
                    self.client.set_terminated(run_id, "FAILED")
            status = "FINISHED" if store.MESSAGE not in final else "FAILED"
        else:
            if stopped_by_runner:
                message = f"runner stopped by {signal.Signals(self.stop_signal or signal.SIGTERM).name} while the job ran"
            else:
                message = failure_message(rc, err_path, cancelled=cancelled, trainer_status=trainer_status)
            killed = cancelled or stopped_by_runner or rc < 0 or (trainer_status or 0) > 128
            target = "KILLED" if killed else "FAILED"
            if status != target:
                self.client.set_terminated(run_id, target)
            final[store.MESSAGE] = message
            status = target
        self._attach_logs(run_id, err_path)
        store.log_record(self.settings, self.client, run_id, exit_code=rc, trainer_status=trainer_status)
        final[store.STATE] = store.STATE_DONE
        store.set_tags(self.client, run_id, final)
        log.info("job %s: %s (exit code %s)", run_id, status, rc)
        return status

    def _record(self, run_id: str, **fields: str) -> None:
        """Add to the job's record; locked, as a warm job's own process writes to it too."""
        with store.queue_lock(self.settings):
            store.update_record(self.settings, run_id, **fields)

    def _cancel_requested(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).data.tags.get(store.CANCEL) == "1"
        except Exception:  # a store hiccup must not end the job; the next poll retries
            log.warning("job %s: could not read its cancel flag", run_id, exc_info=True)
            return False

    def fail(self, run_id: str, message: str, status: str = "FAILED") -> str:
        """End a job for a reason of the runner's own (not the trainer's)."""
        log.warning("job %s: %s", run_id, message)
        store.set_tags(self.client, run_id, {store.MESSAGE: message, store.STATE: store.STATE_DONE})
        self.client.set_terminated(run_id, status)
        store.log_record(self.settings, self.client, run_id)
        return status

    def _attach_logs(self, run_id: str, err_path: Path) -> None:
        """Keep the job's output with the run (artifact `job_logs/`), best effort."""
        for path in (err_path.with_name(err_path.name.replace(".err.", ".out.")), err_path):
            try:
                if path.is_file() and path.stat().st_size:
                    self.client.log_artifact(run_id, str(path), "job_logs")
            except Exception as exc:  # logs are a convenience; never fail the job for them
                log.warning("job %s: could not upload %s: %s", run_id, path.name, exc)

    # -- loop ----------------------------------------------------------------------------------
    def serve(self, slots: int) -> int:
        """Drain the queue while holding a slot, then wait idle for more; returns the number of
        jobs run."""
        self.slot = self.slot or acquire_slot(self.settings, slots)
        if self.slot is None:
            log.info("all %d runner slot(s) taken; exiting", slots)
            return 0
        if warm.enabled():  # holding the slot: a submit meanwhile starts no other runner
            warm.preload()
        done = 0
        try:
            self.reconcile_orphans()
            self.adopt_abandoned()
            while self.stop_signal is None:
                run = self.claim_next()
                if run is None:
                    if self.idle():
                        continue
                    # Release, then look once more: a submit that saw our slot taken before we
                    # released it has already queued its job, and one after will spawn a runner.
                    release_slot(self.slot)
                    self.slot = None
                    if not store.queued(self.client, self.experiment_id):
                        break
                    self.slot = acquire_slot(self.settings, slots)
                    if self.slot is None:
                        break
                    continue
                try:
                    self.run_job(run)
                except Exception as exc:  # one broken job must not take the queue down with it
                    log.exception("job %s: runner error", run.info.run_id)
                    try:
                        self.fail(run.info.run_id, f"runner error: {type(exc).__name__}: {exc}")
                    except Exception:
                        log.exception("job %s: could not record the failure", run.info.run_id)
                done += 1
        finally:
            if self.slot is not None:
                release_slot(self.slot)
                self.slot = None
        return done

    def idle(self) -> bool:
        """Wait, warm, for a job: True when one is queued, False after `runner_idle_seconds`
        (at once without a wake FIFO, or when the preloaded code changed: a new runner loads it)."""
        try:
            seconds = slots_mod.idle_seconds(self.settings) if max_runners(self.settings) else 0.0
        except MiniAutoMLError as exc:
            log.warning("%s; not waiting for more jobs", exc)
            return False
        if self.wake_fd is None or seconds <= 0 or (warm.enabled() and not warm.ready()):
            return False
        deadline = time.monotonic() + seconds
        while self.stop_signal is None and self.settings.state_dir.is_dir():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            slots_mod.wait_wake(self.wake_fd, min(left, IDLE_QUEUE_CHECK_SECONDS))
            if self.stop_signal is None and store.queued(self.client, self.experiment_id):
                return True
        return False


def claim_abandoned(settings: Settings, client: "MlflowClient", run_id: str, me: ProcessRef) -> "Run | None":
    """Make `me` the runner of a job whose runner died; None if it is not abandoned (any more)."""
    with store.queue_lock(settings):
        run = client.get_run(run_id)
        if not store.abandoned(settings, run):
            return None
        store.update_record(settings, run_id, **{store.RUNNER: me.encode()})
        return run


def finalise_abandoned(settings: Settings, run: "Run") -> "Run":
    """Record the end of a job that ended after its runner died (its model version, exit code,
    message), here and now, as its runner would have. Returns the run as it is then."""
    runner = Runner(settings)
    claimed = claim_abandoned(settings, runner.client, run.info.run_id, runner.me)
    if claimed is not None:
        runner.follow(claimed)
    return runner.client.get_run(run.info.run_id)


def main(settings: Settings, slots: int | None = None) -> int:
    """Entry of `python -m miniautoml.jobs runner`: drain the queue, wait idle a while, exit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runner[%(process)d] %(levelname)s %(message)s")
    slots = slots if slots is not None else max(1, max_runners(settings))
    # The slot first: until a runner holds it, `submit`/`wait` see it free and spawn more runners.
    slot = acquire_slot(settings, slots)
    if slot is None:
        log.info("all %d runner slot(s) taken; exiting", slots)
        return 0
    try:
        runner = Runner(settings)
    except BaseException:
        release_slot(slot)
        raise
    runner.slot = slot

    def on_signal(signum: int, _frame: object) -> None:
        runner.stop_signal = signum
        if runner.wake_fd is not None:  # end an idle wait now (a full pipe wakes it anyway)
            with contextlib.suppress(OSError):
                os.write(runner.wake_fd, b"s")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner.wake_fd = slots_mod.open_wake(settings)
    try:
        count = runner.serve(slots)
    finally:
        if runner.wake_fd is not None:
            os.close(runner.wake_fd)
    log.info("queue drained after %d job(s); exiting", count)
    return count
