"""The book's training service over MLflow: submit, status, list, wait, cancel.

A job id is the MLflow run id of the job (and so the id of the model it trains).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from miniautoml import algorithms as algorithms_mod
from miniautoml.config import PROJECT_ROOT, Settings
from miniautoml.errors import MiniAutoMLError, NotFoundError, UserInputError
from miniautoml.jobs import runner as runner_mod
from miniautoml.jobs import slots as slots_mod
from miniautoml.jobs import store
from miniautoml.jobs.store import JobStatus
from miniautoml.processes import ProcessRef

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlflow import MlflowClient

    from miniautoml.jobs.progress import Epoch

DEFAULT_ALGORITHM = algorithms_mod.DEFAULT_ALGORITHM
# Training parameters the job request carries as MLproject parameters, not as -P overrides.
RESERVED_PARAMS = {
    "dataset_id": "--dataset",
    "version_hash": "--version-hash",
    "model_name": "--model-name",
    "data.path": "--data-path",
    "algorithm": "--algorithm",
}
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_PARAM_KEY_RE = re.compile(r"^(\+{1,2}|~)?[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*(@[A-Za-z0-9_.\-]+)?$")


class JobFailedError(MiniAutoMLError):
    """`wait` on a job that ended in failure."""

    exit_code = 1


class JobTimeoutError(MiniAutoMLError):
    """`wait` gave up before the job ended (the job goes on)."""

    exit_code = 124


@dataclass
class JobRequest:
    """What `submit` records on the job's run (tags) and the runner hands to `mlflow run`."""

    model_name: str
    algorithm: str = DEFAULT_ALGORITHM
    dataset_id: str = ""
    version_hash: str = ""
    data_path: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _client(settings: Settings) -> tuple["MlflowClient", str]:
    from miniautoml.adapters import mlflow as mlflow_adapter

    return mlflow_adapter.client(settings), mlflow_adapter.ensure_experiment(settings)


# --- validation -------------------------------------------------------------------------------
def _check_params(params: dict[str, str]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in params.items():
        key = key.strip()
        if not _PARAM_KEY_RE.match(key):
            raise UserInputError(f"-P {key}={value}: {key!r} is not a parameter name (e.g. epochs, model.embed_dim)")
        bare = key.lstrip("+~")
        if bare in RESERVED_PARAMS:
            raise UserInputError(f"-P {key}=...: give {bare} with {RESERVED_PARAMS[bare]}, not -P")
        if "\n" in value or "\r" in value:
            raise UserInputError(f"-P {key}: the value spans lines")
        _check_documented(key, value)
        clean[key] = value
    return clean


def _check_documented(key: str, value: str) -> None:
    """Only the training parameters params/ declares, each with a value of its type: no Hydra
    `+key`/`~key`/`hydra.*` overrides, no NaN/inf (the trainer checks the same again)."""
    from training_code.validation import validate_override

    validate_override(key, value)


def _check_dataset(
    settings: Settings, dataset_id: str, version_hash: str, algorithm: "algorithms_mod.Algorithm | None" = None
) -> str:
    """The dataset's canonical id if the dataset service knows it, the hash's commits exist and
    the algorithm trains on its type."""
    from miniautoml.datasets import show_dataset
    from miniautoml.datasets.version_hash import commit_ids

    summary = show_dataset(settings, dataset_id)  # NotFoundError for an unknown dataset
    if algorithm is not None:
        algorithms_mod.check_dataset_type(algorithm, summary.dataset_type, f"{summary.dataset_id} ({summary.name})")
    wanted = commit_ids(version_hash)  # UserInputError for a malformed hash
    if not wanted:
        raise UserInputError(f"version hash {version_hash!r} selects no commits: nothing to train on")
    have = {int(c.commit_id) for c in summary.commits}
    missing = [c for c in wanted if c not in have]
    if missing:
        raise NotFoundError(
            f"version hash {version_hash!r} selects commit(s) {', '.join(map(str, missing))}, "
            f"which dataset {summary.dataset_id} ({summary.name}) does not have"
        )
    return summary.dataset_id


def _check_data_path(data_path: str) -> str:
    """Absolute paths (the trainer runs in the project directory), each existing."""
    parts = [p for p in data_path.split(os.pathsep) if p.strip()]
    if not parts:
        raise UserInputError("--data-path is empty")
    resolved = []
    for part in parts:
        path = Path(part).expanduser().resolve()
        if not path.exists():
            raise UserInputError(f"--data-path {part}: no such file or directory")
        resolved.append(str(path))
    return os.pathsep.join(resolved)


def _check_training_config(request: JobRequest, algorithm: "algorithms_mod.Algorithm") -> None:
    """Compose the trainer's Hydra config with the request to reject bad parameters up front."""
    from omegaconf import OmegaConf

    from training_code.train import load_config
    from training_code.validation import validate_params

    fixed = {
        "dataset_id": request.dataset_id,
        "version_hash": request.version_hash,
        "model_name": request.model_name,
        "data.path": request.data_path,
    }
    overrides = [f"{k}={v}" for k, v in fixed.items() if v] + algorithm.overrides()
    overrides += [f"{k}={v}" for k, v in request.params.items()]
    try:
        cfg = load_config(overrides)
    except Exception as exc:  # hydra/omegaconf errors: an unknown key, an unparsable value
        first = " ".join(str(exc).split("\n")[0].split())
        raise UserInputError(f"training parameters {_show(request.params)}: {first}") from None
    validate_params(OmegaConf.to_container(cfg, resolve=True))


def _show(params: dict[str, str]) -> str:
    return " ".join(f"-P {k}={v}" for k, v in params.items()) or "(defaults)"


def build_request(
    settings: Settings,
    *,
    model_name: str | None,
    dataset_id: str | None = None,
    version_hash: str | None = None,
    algorithm: str | None = None,
    params: dict[str, str] | None = None,
    data_path: str | None = None,
) -> JobRequest:
    """Validate a training request completely; raises UserInputError/NotFoundError."""
    chosen = algorithms_mod.get_algorithm(algorithm)  # UserInputError for an unknown name
    algorithms_mod.check_available(chosen)
    model_name = (model_name or "").strip()
    if not model_name:
        raise UserInputError("model name missing: pass --model-name NAME (the registered model to add a version to)")
    if not _MODEL_NAME_RE.match(model_name):
        raise UserInputError(
            f"model name {model_name!r}: use up to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    dataset_id, version_hash, data_path = (dataset_id or "").strip(), (version_hash or "").strip(), (data_path or "").strip()
    if data_path and (dataset_id or version_hash):
        raise UserInputError("give --dataset/--version-hash or --data-path, not both")
    if not data_path:
        if not dataset_id:
            raise UserInputError("dataset missing: pass --dataset DATASET and --version-hash HASH")
        if not version_hash:
            raise UserInputError(f"version hash missing: pass --version-hash HASH (see `miniautoml dataset prepare {dataset_id}`)")
        dataset_id = _check_dataset(settings, dataset_id, version_hash, chosen)
    else:  # CSV files of text,label rows: TEXT_INTENT data
        algorithms_mod.check_dataset_type(chosen, "TEXT_INTENT", f"--data-path {data_path}")
        data_path = _check_data_path(data_path)
    params = _check_params(dict(params or {}))
    for key, value in params.items():  # the config groups an algorithm implies are its own
        if key in chosen.config_group and value != chosen.config_group[key]:
            raise UserInputError(f"-P {key}={value}: algorithm {chosen.name} sets {key}={chosen.config_group[key]}")
    request = JobRequest(
        model_name=model_name, algorithm=chosen.name, dataset_id=dataset_id, version_hash=version_hash,
        data_path=data_path, params=params,
    )
    _check_training_config(request, chosen)
    return request


# --- service ----------------------------------------------------------------------------------
def submit_job(
    settings: Settings,
    *,
    model_name: str | None,
    dataset_id: str | None = None,
    version_hash: str | None = None,
    algorithm: str | None = None,
    params: dict[str, str] | None = None,
    data_path: str | None = None,
    start_runner: bool = True,
) -> str:
    """Queue a training job; returns its id (= MLflow run id). Nothing is queued on bad input.

    With `start_runner`, a detached runner is spawned if a runner slot is free.
    """
    request = build_request(
        settings, model_name=model_name, dataset_id=dataset_id, version_hash=version_hash,
        algorithm=algorithm, params=params, data_path=data_path,
    )
    slots = slots_mod.max_runners(settings) if start_runner else 0  # a bad setting fails before queueing
    client, experiment_id = _client(settings)
    tags = {
        store.KIND: store.KIND_JOB,
        store.ALGORITHM: request.algorithm,
        store.MODEL_NAME: request.model_name,
        store.PARAMS: json.dumps(request.params, sort_keys=True),
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": str(PROJECT_ROOT),
        "mlflow.project.entryPoint": algorithms_mod.get_algorithm(request.algorithm).entry_point,
    }
    if request.data_path:
        tags[store.DATA_PATH] = request.data_path
    else:
        tags[store.DATASET_ID], tags[store.VERSION_HASH] = request.dataset_id, request.version_hash
    with store.queue_lock(settings):
        number = len(store.search_jobs(client, experiment_id, include_deleted=True)) + 1
        tags[store.NUMBER] = str(number)
        run = client.create_run(experiment_id, tags=tags, run_name=f"training job {number}")
        client.update_run(run.info.run_id, status="SCHEDULED")
    if slots:
        runner_mod.ensure_runner(settings)
    return run.info.run_id


def _reconciled(settings: Settings, client: "MlflowClient", job_id: str):
    return _reconcile(settings, client, store.get_job_run(client, job_id))


def _reconcile(settings: Settings, client: "MlflowClient", run):  # type: ignore[no-untyped-def]
    """The run with what a dead runner left unrecorded recorded: a job that died with its runner
    is marked failed; one that ended on its own after its runner died is finalised (model
    version, exit code) here. One still training after its runner died needs a runner."""
    if store.orphaned(settings, run):
        return store.mark_orphan_failed(settings, client, run)
    if store.abandoned(settings, run) and run.info.status in store.MLFLOW_TERMINAL and not store.job_process_alive(settings, run):
        return runner_mod.finalise_abandoned(settings, run)
    return run


def _needs_runner(settings: Settings, run) -> bool:  # type: ignore[no-untyped-def]
    """Queued, or still training after its runner died (a new runner adopts it)."""
    queuing = run.info.status == "SCHEDULED" and run.data.tags.get(store.STATE) != store.STATE_LAUNCH
    return queuing or store.abandoned(settings, run)


def _status(settings: Settings, run, queue=None) -> JobStatus:  # type: ignore[no-untyped-def]
    """The job's status, with how it runs here (processes, logs) from its local record."""
    return store.derive_status(run, queue, store.read_record(settings, run.info.run_id))


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
    # Read the record after tagging: a runner that launched the job after our first read either
    # saw the tag, or recorded the process before we look here.
    process = ProcessRef.decode(store.read_record(settings, job_id).get(store.PROCESS))
    if process is not None:
        process.kill_group()  # here and now; a runner on another host stops it on its next poll
    return _status(settings, client.get_run(job_id))


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

