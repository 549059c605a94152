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
import signal
import time
from typing import IO, TYPE_CHECKING

from miniautoml.config import Settings
from miniautoml.errors import MiniAutoMLError
from miniautoml.jobs import finish, handoff, store, warm
from miniautoml.jobs import slots as slots_mod
from miniautoml.jobs.backends.local import LocalBackend, claim_abandoned, ensure_runner, spawn_runner
from miniautoml.jobs.launch import child_command, launch_command
from miniautoml.jobs.slots import acquire_slot, max_runners, release_slot
from miniautoml.processes import Process, ProcessRef
from miniautoml.proctitle import set_title
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


class Runner:
    def __init__(self, settings: Settings):
        from miniautoml.adapters import mlflow as mlflow_adapter

        self.settings = settings
        self.client: MlflowClient = mlflow_adapter.client(settings)
        self.backend = LocalBackend(settings, self.client)
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
        `run_job`, then record its end. Returns the MLflow status."""
        run_id = run.info.run_id
        ref = ProcessRef.decode(store.read_record(self.settings, run_id).get(store.PROCESS))
        stopped = False
        if ref is not None and ref.alive() is True:  # seen alive: its group id is not yet anyone else's
            stopped = self._watch(run_id, Process(ref, name=f"job {run_id}"))
        return self.backend.record_end(run_id, self.backend.exit_of(run_id, stopped_by=self._stopped_by(stopped)))

    # -- one job -------------------------------------------------------------------------------
    def run_job(self, run: "Run") -> str:
        """Launch one claimed job, wait for it, leave it terminal. Returns the MLflow status."""
        run_id = run.info.run_id
        try:
            launch = self.backend.prepare(run)
        except MiniAutoMLError as exc:  # e.g. its algorithm's declaration was removed since submit
            return self.fail(run_id, f"could not launch: {exc}")
        log.info("job %s (%s): %s", run_id, "warm" if launch.warm else "cold", redact_text(" ".join(launch.command.argv)))
        if self._cancel_requested(run_id):
            return self.fail(run_id, "cancelled before launch", "KILLED")
        held = [fd for fd in (self.wake_fd, self.slot.fileno() if self.slot else None) if fd is not None]
        try:
            job = self.backend.start(launch, close_fds=held)
        except OSError as exc:
            return self.fail(run_id, f"could not start mlflow run: {exc}")
        stopped = self._watch(run_id, job)
        assert job.returncode is not None  # our child, waited for
        exit = self.backend.exit_of(run_id, job.returncode, self._stopped_by(stopped))
        return self.backend.record_end(run_id, exit)

    def _stopped_by(self, stopped: bool) -> int | None:
        return (self.stop_signal or signal.SIGTERM) if stopped else None

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

    def _cancel_requested(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).data.tags.get(store.CANCEL) == "1"
        except Exception:  # a store hiccup must not end the job; the next poll retries
            log.warning("job %s: could not read its cancel flag", run_id, exc_info=True)
            return False

    def fail(self, run_id: str, message: str, status: str = "FAILED") -> str:
        """End a job for a reason of the runner's own (not the trainer's)."""
        return finish.fail(self.settings, self.client, run_id, message, status)

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
        with handoff.idle(self.settings):  # submits hand this runner their jobs to queue
            while self.stop_signal is None and self.settings.state_dir.is_dir():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                slots_mod.wait_wake(self.wake_fd, min(left, IDLE_QUEUE_CHECK_SECONDS))
                if self.stop_signal is None and (handoff.take_requests(self.settings, self.client, self.experiment_id)
                                                 or store.queued(self.client, self.experiment_id)):
                    return True
        return False


def main(settings: Settings, slots: int | None = None, slot: IO[str] | None = None) -> int:
    """The runner (`train runner`, or forked by its supervisor holding `slot`, jobs/supervisor.py):
    drain the queue, wait idle a while, exit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runner[%(process)d] %(levelname)s %(message)s")
    set_title(f"miniautoml runner {settings.workspace}")
    slots = slots if slots is not None else max(1, max_runners(settings))
    # The slot first: until a runner holds it, `submit`/`wait` see it free and spawn more runners.
    slot = acquire_slot(settings, slots) if slot is None else slots_mod.own_slot(slot)
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
