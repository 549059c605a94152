"""MLflow as the job store: a training job is an MLflow run, its request and state are run tags.

A queued job is a run with status SCHEDULED; the queue is FIFO by the run's start time (the
submit time). A runner claims the head by tagging it `launch` under the workspace's queue lock,
then `mlflow run --run-id` resumes the same run, which turns RUNNING when the trainer starts.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miniautoml.config import Settings
from miniautoml.locks import file_lock
from miniautoml.errors import NotFoundError
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
DATASET_ID = "dataset_id"  # shared with the trainer, which sets the same values
VERSION_HASH = "version_hash"
STATE = "miniautoml.job_state"  # "launch" once a runner claimed it, "done" once it finalised it
RUNNER = "miniautoml.runner"  # ProcessRef of the runner that claimed the job
PROCESS = "miniautoml.process"  # ProcessRef of `mlflow run` (leader of the job's process group)
LAUNCHED_AT = "miniautoml.launched_at"  # ms since epoch
EXIT_CODE = "miniautoml.exit_code"
MESSAGE = "miniautoml.message"  # trainer: "test accuracy 0.xxx"; runner: the failure
LOG_STDOUT = "miniautoml.log.stdout"
LOG_STDERR = "miniautoml.log.stderr"
CANCEL = "miniautoml.cancel_requested"
MODEL_VERSION = "miniautoml.model_version"
NUMBER = "miniautoml.job_number"  # N of "training job N": the FIFO order (numbered under the queue lock)

STATE_LAUNCH = "launch"
STATE_DONE = "done"

# --- statuses ---------------------------------------------------------------------------------
QUEUING, LAUNCH, RUNNING, SUCCEED, FAILURE = "queuing", "launch", "running", "succeed", "failure"
TERMINAL = (SUCCEED, FAILURE)
MLFLOW_TERMINAL = ("FINISHED", "FAILED", "KILLED")

JOB_FILTER = f"tags.`{KIND}` = '{KIND_JOB}'"
_RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")


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


def logs_dir(settings: Settings) -> Path:
    path = settings.state_dir / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def set_tags(client: "MlflowClient", run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def search_jobs(
    client: "MlflowClient",
    experiment_id: str,
    extra_filter: str = "",
    order_by: list[str] | None = None,
    limit: int | None = None,
    include_deleted: bool = False,
) -> list["Run"]:
    from mlflow.entities import ViewType

    query = JOB_FILTER + (f" and {extra_filter}" if extra_filter else "")
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=query,
            run_view_type=ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY,
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
    from mlflow.exceptions import MlflowException

    job_id = (job_id or "").strip()
    if not _RUN_ID_RE.match(job_id):
        raise NotFoundError(f"job {job_id!r} not found (a job id is a 32-character MLflow run id)")
    try:
        run = client.get_run(job_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise NotFoundError(f"job {job_id!r} not found") from None
        raise
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


def metadata(run: "Run") -> dict[str, Any]:
    tags = run.data.tags
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
        "launched_at": _iso(tags.get(LAUNCHED_AT)),
        "ended_at": _iso(run.info.end_time) if run.info.status in MLFLOW_TERMINAL else None,
        "exit_code": int(exit_code) if exit_code not in (None, "") else None,
        "model_version": tags.get(MODEL_VERSION) or None,
        "model_uri": f"runs:/{run.info.run_id}/model",
        "logs": {"stdout": tags.get(LOG_STDOUT), "stderr": tags.get(LOG_STDERR)},
        "runner": _proc(tags.get(RUNNER)),
        "process": _proc(tags.get(PROCESS)),  # `mlflow run`, leader of the job's process group
    }


def _proc(text: str | None) -> dict[str, Any] | None:
    ref = ProcessRef.decode(text)
    return None if ref is None else {"pid": ref.pid, "host": ref.host}


def derive_status(run: "Run", queue: list["Run"] | None = None) -> JobStatus:
    """MLflow status + tags -> the book's status. SCHEDULED: queuing, or launch once a runner
    claimed it; RUNNING: running; FINISHED: succeed; FAILED/KILLED: failure."""
    info, tags = run.info, run.data.tags
    position = None
    if info.status == "SCHEDULED":
        if tags.get(STATE) == STATE_LAUNCH:
            status, message = LAUNCH, "launching the trainer"
        else:
            status = QUEUING
            ids = [r.info.run_id for r in queue or []]
            position = ids.index(info.run_id) if info.run_id in ids else None
            message = (
                "waiting for a runner" if position is None
                else f"{position} job(s) ahead" if position else "next to launch"
            )
    elif info.status == "RUNNING":
        status, message = RUNNING, tags.get(MESSAGE) or "training"
    elif info.status == "FINISHED":
        status, message = SUCCEED, tags.get(MESSAGE) or "finished"
    else:
        status = FAILURE
        message = tags.get(MESSAGE) or ("killed" if info.status == "KILLED" else "failed")
    return JobStatus(job_id=info.run_id, status=status, message=message,
                     position_in_queue=position, metadata=metadata(run))


def finalised(run: "Run") -> bool:
    """Terminal and nothing left to record: the runner marked it done, or the job never had a
    runner here to do it (created by hand, or claimed on another host). A job whose runner died
    is not: whoever looks at it next records it (see `abandoned`)."""
    if run.info.status not in MLFLOW_TERMINAL:
        return False
    if run.data.tags.get(STATE) == STATE_DONE:
        return True
    runner = ProcessRef.decode(run.data.tags.get(RUNNER))
    return runner is None or runner.alive() is None


def abandoned(run: "Run") -> bool:
    """Claimed by a runner that died before it recorded the job's end (model version, exit
    code): its `mlflow run` may still be training, or may have ended on its own."""
    tags = run.data.tags
    if tags.get(STATE) != STATE_LAUNCH:
        return False
    runner = ProcessRef.decode(tags.get(RUNNER))
    return runner is not None and runner.alive() is False


def job_process_alive(run: "Run") -> bool:
    """The job's `mlflow run` (leader of its process group) still runs on this host."""
    process = ProcessRef.decode(run.data.tags.get(PROCESS))
    return process is not None and process.alive() is True


def orphaned(run: "Run") -> bool:
    """Launched or running, but neither its runner nor its `mlflow run` process is alive here."""
    info, tags = run.info, run.data.tags
    if info.status not in ("RUNNING", "SCHEDULED"):
        return False
    if info.status == "SCHEDULED" and tags.get(STATE) != STATE_LAUNCH:
        return False
    runner = ProcessRef.decode(tags.get(RUNNER))
    if runner is None or runner.alive() is not False:
        return False  # never claimed by a runner (created by hand?) or on another host
    process = ProcessRef.decode(tags.get(PROCESS))
    return process is None or process.alive() is False


def mark_orphan_failed(client: "MlflowClient", run: "Run") -> "Run":
    """Terminal status for a job whose processes died without reporting (e.g. SIGKILLed runner)."""
    from miniautoml.jobs.messages import failure_message

    tags = run.data.tags
    runner = ProcessRef.decode(tags.get(RUNNER))
    if tags.get(CANCEL) == "1":
        message, target = "cancelled by user", "KILLED"
    else:
        where = "before the trainer started" if run.info.status == "SCHEDULED" else "while the job was running"
        message, target = f"the job's runner (pid {runner.pid if runner else '?'}) died {where}", "FAILED"
        detail = failure_message(None, tags.get(LOG_STDERR))
        if detail:
            message += f"; last stderr line: {detail}"
    set_tags(client, run.info.run_id, {MESSAGE: message, STATE: STATE_DONE})
    client.set_terminated(run.info.run_id, target)
    return client.get_run(run.info.run_id)
