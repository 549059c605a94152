"""The book's training service over MLflow: submit, status, list, wait, cancel.

A job id is the MLflow run id of the job (and so the id of the model it trains).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

from miniautoml import algorithms as algorithms_mod
from miniautoml.config import PROJECT_ROOT, Settings
from miniautoml.errors import MiniAutoMLError, UserInputError
from miniautoml.jobs import runner as runner_mod
from miniautoml.jobs import slots as slots_mod
from miniautoml.jobs import handoff, outcome, store
from miniautoml.jobs.requests import build_request
from miniautoml.jobs.store import JobStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlflow import MlflowClient

    from miniautoml.datasets.version_hash import VersionHash
    from miniautoml.jobs.progress import Epoch

class JobFailedError(MiniAutoMLError):
    """`wait` on a job that ended in failure."""

    exit_code = 1


class JobTimeoutError(MiniAutoMLError):
    """`wait` gave up before the job ended (the job goes on)."""

    exit_code = 124


def _client(settings: Settings) -> tuple["MlflowClient", str]:
    from miniautoml.adapters import mlflow as mlflow_adapter

    return mlflow_adapter.client(settings), mlflow_adapter.ensure_experiment(settings)


# --- service ----------------------------------------------------------------------------------
def submit_job(
    settings: Settings,
    *,
    model_name: str | None,
    dataset_id: str | None = None,
    version_hash: VersionHash | str | None = None,
    algorithm: str | None = None,
    params: dict[str, str] | None = None,
    data_path: str | None = None,
    start_runner: bool = True,
    backend: str | None = None,
    extra_tags: dict[str, str] | None = None,
    register: bool = True,
) -> str:
    """Queue a training job; returns its id (= MLflow run id). Nothing is queued on bad input.

    With `start_runner`, a detached runner is spawned if a runner slot is free. `backend`
    (jobs/backends/): `local` (the runner) or `ray` (a Ray Job, submitted here). `extra_tags`
    go on the job's run when it is created (a sweep's `mlflow.parentRunId`); without `register`
    the trainer registers no model version (no model name is handed to it).
    """
    from miniautoml.jobs import backends

    backend = backends.choose(settings, backend)
    request = build_request(
        settings, model_name=model_name, dataset_id=dataset_id, version_hash=version_hash,
        algorithm=algorithm, params=params, data_path=data_path,
    )
    ray = backends.RayBackend.connect(settings, dataset=not request.data_path) if backend == backends.RAY else None  # no cluster: nothing queued
    # a bad setting fails before queueing
    slots = slots_mod.max_runners(settings) if start_runner and ray is None else 0
    tags = {
        **(extra_tags or {}),
        store.KIND: store.KIND_JOB,
        store.ALGORITHM: request.algorithm,
        store.PARAMS: json.dumps(request.params, sort_keys=True),
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": str(PROJECT_ROOT),
        "mlflow.project.entryPoint": algorithms_mod.get_algorithm(request.algorithm).entry_point,
    }
    if register:  # the runner hands the model name to the trainer, which registers a version
        tags[store.MODEL_NAME] = request.model_name
    if ray is not None:  # Ray has it from submit on: never in the local runners' queue
        tags[store.BACKEND], tags[store.STATE] = backends.RAY, store.STATE_LAUNCH
    if request.data_path:
        tags[store.DATA_PATH] = request.data_path
    else:
        tags[store.DATASET_ID], tags[store.VERSION_HASH] = request.dataset_id, str(request.version_hash)
    if slots:  # an idle warm runner queues it: no MLflow import here (jobs/handoff.py)
        job_id = handoff.offer(settings, tags)
        if job_id is not None:
            return job_id
    client, experiment_id = _client(settings)
    job_id = store.create_job(settings, client, experiment_id, tags)
    if ray is not None:
        ray.submit(client.get_run(job_id))
    if slots:
        runner_mod.ensure_runner(settings)
    return job_id


def _reconciled(settings: Settings, client: "MlflowClient", job_id: str):
    return _reconcile(settings, client, store.get_job_run(client, job_id))


def _reconcile(settings: Settings, client: "MlflowClient", run):  # type: ignore[no-untyped-def]
    """The run brought up to date by its backend (jobs/backends/): what a dead local runner left
    unrecorded recorded, a Ray job's end once Ray reports it."""
    from miniautoml.jobs import backends

    return backends.for_run(settings, run, client).status(run)


def _needs_runner(settings: Settings, run) -> bool:  # type: ignore[no-untyped-def]
    """Queued, or still training after its runner died (a new runner adopts it)."""
    queuing = run.info.status == "SCHEDULED" and run.data.tags.get(store.STATE) != store.STATE_LAUNCH
    return queuing or store.abandoned(settings, run)


def _status(settings: Settings, run, queue=None) -> JobStatus:  # type: ignore[no-untyped-def]
    """The job's status, with how it runs here (processes, logs) from its local record."""
    record = store.read_record(settings, run.info.run_id)
    job = store.derive_status(run, queue, record)
    if outcome.ray_phase(record.get("ray_status") or "", job.status) != job.status:
        job.status, job.message = store.RUNNING, "starting the trainer on Ray"
    return job


def _revive_runner(settings: Settings) -> None:
    """Start a runner if a slot is free, e.g. after the last one was SIGKILLed."""
    try:
        runner_mod.ensure_runner(settings)
    except UserInputError:  # a bad max_runners setting: `submit` reports it; reading goes on
        pass


def job_status(settings: Settings, job_id: str) -> JobStatus:
    """The job's status. A job whose runner died is recorded here (failed if it died too, its
    end and model version if it ended on its own), and a runner is started if the job waits
    for one."""
    client, experiment_id = _client(settings)
    run = _reconciled(settings, client, job_id)
    queue = store.queued(client, experiment_id) if run.info.status == "SCHEDULED" else None
    if _needs_runner(settings, run):
        _revive_runner(settings)
    return _status(settings, run, queue)


def ended_job(settings: Settings, job_id: str) -> JobStatus | None:
    """The job's final status once it ended and is recorded, else None; unlike `job_status` it
    starts no runner, so a caller polling many jobs each second spawns none."""
    client, _ = _client(settings)
    run = _reconciled(settings, client, job_id)
    return _status(settings, run) if store.finalised(settings, run) else None


def list_jobs(settings: Settings, status: str | None = None, limit: int | None = 50) -> list[JobStatus]:
    """Jobs, newest first; `status` filters on the book's status names."""
    if status is not None and status not in (store.QUEUING, store.LAUNCH, store.RUNNING, store.SUCCEED, store.FAILURE):
        raise UserInputError(f"status {status!r}: expected queuing, launch, running, succeed or failure")
    client, experiment_id = _client(settings)
    runs = store.search_jobs(client, experiment_id, order_by=["attributes.start_time DESC"],
                             limit=None if status else limit)
    queue = store.queued(client, experiment_id)
    jobs, revive = [], bool(queue)
    for run in runs:
        run = _reconcile(settings, client, run)
        revive = revive or _needs_runner(settings, run)
        job = _status(settings, run, queue)
        if status is None or job.status == status:
            jobs.append(job)
    if revive:
        _revive_runner(settings)
    return jobs[:limit] if limit else jobs


def wait_job(
    settings: Settings,
    job_id: str,
    timeout: float | None = None,
    poll: float = 0.5,
    raise_on_failure: bool = False,
    on_epoch: "Callable[[Epoch], None] | None" = None,
) -> JobStatus:
    """Block until the job is terminal (and its runner finished recording it).

    Starts a runner if the job is queued and none is alive (e.g. the last one was killed).
    `on_epoch` is called with each epoch the trainer finishes (its metrics), in order.
    Raises JobTimeoutError after `timeout` seconds; JobFailedError on failure if asked to.
    """
    from miniautoml.jobs.progress import EpochReader

    client, experiment_id = _client(settings)
    deadline = None if timeout is None else time.monotonic() + timeout
    checked_runner = 0.0
    epochs = EpochReader(client)
    while True:
        run = _reconciled(settings, client, job_id)
        if on_epoch is not None:
            for epoch in epochs.read(run):
                on_epoch(epoch)
        if store.finalised(settings, run):
            job = _status(settings, run)
            if raise_on_failure and job.status == store.FAILURE:
                raise JobFailedError(f"job {job_id} failed: {job.message}")
            return job
        if _needs_runner(settings, run) and time.monotonic() - checked_runner > 5.0:
            checked_runner = time.monotonic()
            runner_mod.ensure_runner(settings)
        if deadline is not None and time.monotonic() >= deadline:
            job = _status(settings, run)
            raise JobTimeoutError(f"job {job_id} still {job.status} after {timeout:g}s; it goes on")
        time.sleep(poll)


def cancel_job(settings: Settings, job_id: str) -> JobStatus:
    """Cancel a job: a queued one never launches; a launched/running one is SIGTERMed and ends
    KILLED. Cancelling a finished job is an error."""
    client, experiment_id = _client(settings)
    if store.get_job_run(client, job_id).data.tags.get(store.BACKEND):
        return _cancel_ray(settings, client, job_id)
    with store.queue_lock(settings):
        run = _reconciled(settings, client, job_id)
        job = _status(settings, run)
        if job.terminal:
            raise UserInputError(f"job {job_id} already ended ({job.status}); nothing to cancel")
        store.set_tags(client, job_id, {store.CANCEL: "1"})
        if job.status == store.QUEUING:
            store.set_tags(client, job_id, {store.MESSAGE: "cancelled before launch", store.STATE: store.STATE_DONE})
            client.set_terminated(job_id, "KILLED")
            return _status(settings, client.get_run(job_id))
    # The record is read after tagging: a runner that launched the job after our first read
    # either saw the tag, or recorded the process before the backend looks.
    from miniautoml.jobs.backends import LocalBackend

    LocalBackend(settings, client).cancel(job_id)
    return _status(settings, client.get_run(job_id))


def _cancel_ray(settings: Settings, client: "MlflowClient", job_id: str) -> JobStatus:
    """Stop a Ray job (`ray job stop`); its end (failure, "cancelled by user") is recorded on the
    next read. Outside the queue lock: recording an end takes it."""
    from miniautoml.jobs import backends

    job = _status(settings, _reconciled(settings, client, job_id))
    if job.terminal:
        raise UserInputError(f"job {job_id} already ended ({job.status}); nothing to cancel")
    store.set_tags(client, job_id, {store.CANCEL: "1"})
    backends.RayBackend.of_job(settings, job_id, client).cancel(job_id)
    return _status(settings, client.get_run(job_id))


def job_logs(settings: Settings, job_id: str) -> str:
    """The job's output so far: Ray's job logs for a Ray job, the runner's log files otherwise."""
    from miniautoml.jobs import backends

    client, _ = _client(settings)
    return backends.for_run(settings, store.get_job_run(client, job_id), client).logs(job_id)


def stop_runners(settings: Settings, timeout: float = 30.0) -> list[int]:
    """SIGTERM this workspace's runners (their current job ends KILLED); returns their pids."""
    import signal

    pids = []
    for ref in slots_mod.live_runners(settings):
        if ref.pid and ref.alive():
            os.kill(ref.pid, signal.SIGTERM)
            pids.append(ref.pid)
    deadline = time.monotonic() + timeout
    while slots_mod.live_runners(settings) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids

