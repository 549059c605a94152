"""MLflow as the job store: a training job is an MLflow run, its request and state are run tags.

How a job runs here (runner and `mlflow run` processes, log paths, launch time) is no public state:
it lives in a local record, `<ws>/.miniautoml/jobs/<job_id>.json`, next to the job's logs, and is
logged with the run as the `job-runner.json` artifact when the job ends.

A queued job is a run with status SCHEDULED; the queue is FIFO by the run's start time (the
submit time). A runner claims the head by tagging it `launch` under the workspace's queue lock,
then `mlflow run --run-id` resumes the same run, which turns RUNNING when the trainer starts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miniautoml.config import Settings
from miniautoml.contract import tags as run_tags
from miniautoml.locks import file_lock
from miniautoml.errors import NotFoundError
from miniautoml.ids import RUN_ID_RE
from miniautoml.jobs import outcome
from miniautoml.processes import ProcessRef

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

# --- tags -------------------------------------------------------------------------------------
KIND = "miniautoml.kind"
KIND_JOB = "training-job"
ALGORITHM = "miniautoml.algorithm"
MODEL_NAME = "miniautoml.model_name"
PARAMS = "miniautoml.params"  # JSON object: the -P key=value pairs (Hydra overrides)
DATA_PATH = "miniautoml.data_path"
DATASET_ID = run_tags.DATASET_ID  # the trainer sets the same values again
VERSION_HASH = run_tags.VERSION_HASH
STATE = "miniautoml.job_state"  # "launch" once a runner claimed it, "done" once it finalised it
EXIT_CODE = "miniautoml.exit_code"
MESSAGE = run_tags.MESSAGE  # trainer: "test accuracy 0.xxx"; runner: the failure
CANCEL = "miniautoml.cancel_requested"
MODEL_VERSION = "miniautoml.model_version"
BACKEND = "miniautoml.backend"  # "ray" for a Ray Job (jobs/backends/); absent: the local runner
NUMBER = "miniautoml.job_number"  # N of "training job N": the FIFO order (numbered under the queue lock)

# --- the local job record (keys) --------------------------------------------------------------
RUNNER = "runner"  # ProcessRef of the runner that claimed the job
PROCESS = "process"  # ProcessRef of `mlflow run` (leader of the job's process group)
LAUNCHED_AT = "launched_at"  # ISO time the runner claimed it
LOG_STDOUT = "log_stdout"
LOG_STDERR = "log_stderr"
RECORD_ARTIFACT = "job-runner.json"  # the record, logged with the run at its end

STATE_LAUNCH = "launch"
STATE_DONE = "done"

# --- statuses (the state machine: jobs/outcome.py) --------------------------------------------
QUEUING, LAUNCH, RUNNING, SUCCEED, FAILURE = outcome.QUEUING, outcome.LAUNCH, outcome.RUNNING, outcome.SUCCEED, outcome.FAILURE
TERMINAL, MLFLOW_TERMINAL = outcome.TERMINAL, outcome.MLFLOW_TERMINAL

JOB_FILTER = f"tags.`{KIND}` = '{KIND_JOB}'"


@dataclass
class JobStatus:
    """The book's `GetTrainingStatus` answer. `position_in_queue`: 0 = launches next; None when
    the job is not queuing."""

    job_id: str
    status: str  # queuing | launch | running | succeed | failure
    message: str
    position_in_queue: int | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def now_ms() -> int:
    return int(time.time() * 1000)


@contextmanager
def queue_lock(settings: Settings) -> Iterator[None]:
    """Serialises numbering, claiming and cancelling of jobs within a workspace."""
    with file_lock(settings.state_dir / "jobs-queue.lock"):
        yield


def create_job(settings: Settings, client: "MlflowClient", experiment_id: str, tags: dict[str, str]) -> str:
    """Queue a job: its run, numbered under the queue lock (the FIFO order), SCHEDULED; its id."""
    with queue_lock(settings):
        number = len(search_jobs(client, experiment_id, include_deleted=True)) + 1
        run = client.create_run(experiment_id, tags={**tags, NUMBER: str(number)}, run_name=f"training job {number}")
        client.update_run(run.info.run_id, status="SCHEDULED")
    return run.info.run_id


def logs_dir(settings: Settings) -> Path:
    path = settings.state_dir / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def record_path(settings: Settings, job_id: str) -> Path:
    return logs_dir(settings) / f"{job_id}.json"


def read_record(settings: Settings, job_id: str) -> dict[str, Any]:
    """The job's local record ({} when this workspace never ran it)."""
    try:
        data = json.loads(record_path(settings, job_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update_record(settings: Settings, job_id: str, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the job's local record (written atomically); returns the record."""
    from miniautoml.files import atomic_write_json

    record = {"job_id": job_id, **read_record(settings, job_id), **fields}
    atomic_write_json(record_path(settings, job_id), record)
    return record


def now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def set_tags(client: "MlflowClient", run_id: str, tags: dict[str, str]) -> None:
    from miniautoml.adapters import mlflow as mlflow_adapter

    mlflow_adapter.set_tags(client, run_id, tags)


def search_jobs(
    client: "MlflowClient",
    experiment_id: str,
    extra_filter: str = "",
    order_by: list[str] | None = None,
    limit: int | None = None,
    include_deleted: bool = False,
) -> list["Run"]:
    from miniautoml.adapters import mlflow as mlflow_adapter

    query = JOB_FILTER + (f" and {extra_filter}" if extra_filter else "")
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=query,
            run_view_type=mlflow_adapter.run_view(include_deleted),
            max_results=min(limit - len(runs), 1000) if limit else 1000,
            order_by=order_by or ["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token or (limit and len(runs) >= limit):
            return runs


def queued(client: "MlflowClient", experiment_id: str) -> list["Run"]:
    """Jobs waiting for a runner, head first: FIFO by submit time (job number breaks ties)."""
    runs = search_jobs(client, experiment_id, "attributes.status = 'SCHEDULED'")
    waiting = [r for r in runs if r.data.tags.get(STATE) != STATE_LAUNCH]
    return sorted(waiting, key=lambda r: (r.info.start_time or 0, _number(r), r.info.run_id))


def _number(run: "Run") -> int:
    try:
        return int(run.data.tags.get(NUMBER, ""))
    except ValueError:
        return 0


def get_job_run(client: "MlflowClient", job_id: str) -> "Run":
    from miniautoml.adapters import mlflow as mlflow_adapter

    job_id = (job_id or "").strip()
    if not RUN_ID_RE.match(job_id):
        raise NotFoundError(f"job {job_id!r} not found (a job id is a 32-character MLflow run id)")
    with mlflow_adapter.errors(not_found=f"job {job_id!r} not found", invalid_is_not_found=True):
        run = client.get_run(job_id)
    if run.data.tags.get(KIND) != KIND_JOB:
        raise NotFoundError(f"job {job_id!r} not found (run {job_id} exists but was not submitted as a training job)")
    if run.info.lifecycle_stage == "deleted":
        raise NotFoundError(f"job {job_id!r} not found (its run was deleted)")
    return run


def _iso(ms: int | str | None) -> str | None:
    if ms in (None, "", 0):
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def metadata(run: "Run", record: dict[str, Any] | None = None) -> dict[str, Any]:
    tags, record = run.data.tags, record or {}
    try:
        params = json.loads(tags.get(PARAMS) or "{}")
    except ValueError:
        params = {}
    exit_code = tags.get(EXIT_CODE)
    return {
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "algorithm": tags.get(ALGORITHM),
        "model_name": tags.get(MODEL_NAME),
        "dataset_id": tags.get(DATASET_ID) or None,
        "version_hash": tags.get(VERSION_HASH) or None,
        "data_path": tags.get(DATA_PATH) or None,
        "params": params,
        "mlflow_status": run.info.status,
        "submitted_at": _iso(run.info.start_time),
        "launched_at": record.get(LAUNCHED_AT),
        "ended_at": _iso(run.info.end_time) if run.info.status in MLFLOW_TERMINAL else None,
        "exit_code": int(exit_code) if exit_code not in (None, "") else None,
        "model_version": tags.get(MODEL_VERSION) or None,
        "model_uri": f"runs:/{run.info.run_id}/model",
        "logs": {"stdout": record.get(LOG_STDOUT), "stderr": record.get(LOG_STDERR)},
        "backend": tags.get(BACKEND) or "local",
        "node": record.get("ray_node"),  # Ray node id of a Ray job's driver
        "node_ip": record.get("ray_node_ip"),  # and that node's IP
        "runner": _proc(record.get(RUNNER)),
        "process": _proc(record.get(PROCESS)),  # `mlflow run`, leader of the job's process group
    }


def _proc(text: str | None) -> dict[str, Any] | None:
    ref = ProcessRef.decode(text)
    return None if ref is None else {"pid": ref.pid, "host": ref.host}


def derive_status(run: "Run", queue: list["Run"] | None = None, record: dict[str, Any] | None = None) -> JobStatus:
    """MLflow status + tags -> the book's status (outcome.phase); `queue` gives a queuing job's place."""
    info, tags = run.info, run.data.tags
    status = outcome.phase(info.status, tags.get(STATE) == STATE_LAUNCH)
    position = None
    if status == QUEUING:
        ids = [r.info.run_id for r in queue or []]
        position = ids.index(info.run_id) if info.run_id in ids else None
    return JobStatus(job_id=info.run_id, status=status, message=outcome.describe(status, info.status, tags.get(MESSAGE), position),
                     position_in_queue=position, metadata=metadata(run, record))


def finalised(settings: Settings, run: "Run") -> bool:
    """Terminal and nothing left to record: the runner marked it done, or the job never had a
    runner here to do it (created by hand, or claimed on another host). A job whose runner died
    is not: whoever looks at it next records it (see `abandoned`)."""
    if run.info.status not in MLFLOW_TERMINAL:
        return False
    if run.data.tags.get(STATE) == STATE_DONE:
        return True
    if run.data.tags.get(BACKEND):  # a Ray job: done once its end is recorded (jobs/backends/ray.py)
        return False
    runner = ProcessRef.decode(read_record(settings, run.info.run_id).get(RUNNER))
    return runner is None or runner.alive() is None


def abandoned(settings: Settings, run: "Run") -> bool:
    """Claimed by a runner that died before it recorded the job's end (model version, exit
    code): its `mlflow run` may still be training, or may have ended on its own."""
    if run.data.tags.get(STATE) != STATE_LAUNCH:
        return False
    runner = ProcessRef.decode(read_record(settings, run.info.run_id).get(RUNNER))
    return runner is not None and runner.alive() is False


def job_process_alive(settings: Settings, run: "Run") -> bool:
    """The job's `mlflow run` (leader of its process group) still runs on this host."""
    process = ProcessRef.decode(read_record(settings, run.info.run_id).get(PROCESS))
    return process is not None and process.alive() is True


def orphaned(settings: Settings, run: "Run") -> bool:
    """Launched or running, but neither its runner nor its `mlflow run` process is alive here."""
    info, tags = run.info, run.data.tags
    if info.status not in ("RUNNING", "SCHEDULED"):
        return False
    if info.status == "SCHEDULED" and tags.get(STATE) != STATE_LAUNCH:
        return False
    record = read_record(settings, info.run_id)
    runner = ProcessRef.decode(record.get(RUNNER))
    if runner is None or runner.alive() is not False:
        return False  # never claimed by a runner (created by hand?) or on another host
    process = ProcessRef.decode(record.get(PROCESS))
    return process is None or process.alive() is False


def mark_orphan_failed(settings: Settings, client: "MlflowClient", run: "Run") -> "Run":
    """Terminal status for a job whose processes died without reporting (e.g. SIGKILLed runner)."""
    from miniautoml.jobs.messages import last_error_line

    record = read_record(settings, run.info.run_id)
    runner = ProcessRef.decode(record.get(RUNNER))
    message, target = outcome.orphan_message(runner.pid if runner else None, run.info.status != "SCHEDULED",
                                             run.data.tags.get(CANCEL) == "1", last_error_line(record.get(LOG_STDERR)))
    set_tags(client, run.info.run_id, {MESSAGE: message, STATE: STATE_DONE})
    client.set_terminated(run.info.run_id, target)
    log_record(settings, client, run.info.run_id)
    return client.get_run(run.info.run_id)


def log_record(settings: Settings, client: "MlflowClient", job_id: str, **fields: Any) -> None:
    """Keep the job's local record with its run (artifact `job-runner.json`), best effort."""
    record = read_record(settings, job_id) | fields
    try:
        client.log_dict(job_id, record, RECORD_ARTIFACT)
    except Exception as exc:  # a convenience for the run page; never fail the job for it
        import logging

        logging.getLogger("miniautoml.jobs").warning("job %s: could not upload %s: %s", job_id, RECORD_ARTIFACT, exc)
