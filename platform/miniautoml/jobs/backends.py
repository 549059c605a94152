"""Where a training job runs: `local` (the workspace's runner processes, jobs/runner.py) or `ray`
(a Ray Job on a Ray cluster, e.g. the one `miniautoml cluster up` started).

The choice: `train submit --backend`, else `MINIAUTOML_JOBS_BACKEND`, else `[jobs] backend` in
miniautoml.toml, else `local`. A job records its backend as the run tag `miniautoml.backend`.

A Ray job's submission id IS the MLflow run id; its entrypoint is the same `mlflow run --run-id`
the local runner launches, with the workspace's tool environment in `runtime_env.env_vars`. Ray's
states map to the book's: PENDING -> launch, RUNNING -> running, SUCCEEDED -> succeed,
FAILED/STOPPED -> failure (message: the last telling line of the job's log). Whoever reads the job
next (status, wait, list) records its end, like the runner does for local jobs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miniautoml.config import PROJECT_ROOT, Settings, file_settings
from miniautoml.errors import MiniAutoMLError, UserInputError, shown
from miniautoml.jobs import store

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

LOCAL, RAY = "local", "ray"
BACKENDS = (LOCAL, RAY)
BACKEND_ENV = "MINIAUTOML_JOBS_BACKEND"
RAY_ADDRESS_ENV = "MINIAUTOML_RAY_ADDRESS"
# the local record's keys for Ray jobs
RAY_STATUS, RAY_NODE = "ray_status", "ray_node"
RAY_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def choose(settings: Settings, explicit: str | None = None) -> str:
    """The backend name; UserInputError for an unknown one."""
    jobs_conf = file_settings(settings.workspace).get("jobs", {})
    name = (explicit or os.environ.get(BACKEND_ENV) or jobs_conf.get("backend") or LOCAL).strip().lower()
    if name not in BACKENDS:
        source = "--backend" if explicit else BACKEND_ENV if os.environ.get(BACKEND_ENV) else "[jobs] backend"
        raise UserInputError(f"{source} {shown(name)}: unknown jobs backend; expected local or ray")
    return name


def backend_of(run: "Run") -> str:
    return run.data.tags.get(store.BACKEND) or LOCAL


def ray_address(settings: Settings) -> str:
    """`MINIAUTOML_RAY_ADDRESS`, else `[jobs] ray_address`, else the cluster `cluster up` recorded."""
    from miniautoml import cluster

    address = os.environ.get(RAY_ADDRESS_ENV) or file_settings(settings.workspace).get("jobs", {}).get("ray_address")
    address = address or cluster.recorded_address(settings)
    if not address:
        raise UserInputError(
            "jobs backend ray: no Ray cluster; start one with `miniautoml cluster up` "
            f"(or set {RAY_ADDRESS_ENV} / [jobs] ray_address)"
        )
    return address


class RayBackend:
    """Ray Jobs through `ray.job_submission.JobSubmissionClient`."""

    name = RAY

    def __init__(self, address: str):
        self.address = address
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError:
            raise UserInputError("jobs backend ray: Ray is not installed (pip install -e '.[ray]')") from None
        try:
            self.client = JobSubmissionClient(address)
        except Exception as exc:  # ConnectionError and friends, worded by Ray
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UserInputError(
                f"jobs backend ray: no Ray cluster answers at {address} ({first}); "
                "start one with `miniautoml cluster up`"
            ) from None

    @classmethod
    def connect(cls, settings: Settings, address: str | None = None) -> "RayBackend":
        return cls(address or ray_address(settings))

    # -- the interface -------------------------------------------------------------------------
    def submit(self, settings: Settings, run: "Run") -> None:
        """Submit the job's `mlflow run` as Ray Job `run_id`."""
        from miniautoml.jobs.runner import launch_command

        run_id = run.info.run_id
        storage = store.logs_dir(settings) / f"{run_id}.storage"
        argv = launch_command(run, storage)
        env = settings.tool_env() | {
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            "MINIAUTOML_PYTHON": sys.executable,  # read by the MLproject command
            "MINIAUTOML_JOB_ID": run_id,
            "PYTHONUNBUFFERED": "1",
        }
        self.client.submit_job(
            entrypoint=f"cd {shlex.quote(str(PROJECT_ROOT))} && exec {shlex.join(argv)}",
            submission_id=run_id,
            runtime_env={"env_vars": env},
            entrypoint_num_cpus=1,  # a job takes a CPU: Ray queues what does not fit
            metadata={"miniautoml_workspace": str(settings.workspace)},
        )
        store.update_record(settings, run_id, ray_address=self.address, launched_at=store.now_iso())

    def status(self, run_id: str) -> tuple[str, dict[str, Any]]:
        """Ray's status name and details (node, exit code, message)."""
        info = self.client.get_job_info(run_id)
        status = getattr(info.status, "value", str(info.status))
        return status, {
            "node": getattr(info, "driver_node_id", None),
            "exit_code": getattr(info, "driver_exit_code", None),
            "message": info.message or "",
        }

    def logs(self, run_id: str) -> str:
        return self.client.get_job_logs(run_id)

    def cancel(self, run_id: str) -> None:
        self.client.stop_job(run_id)


def submit(settings: Settings, client: "MlflowClient", ray: RayBackend, run: "Run") -> None:
    """Submit a created job run to Ray; on a refusal the job ends failure and the error is raised."""
    try:
        ray.submit(settings, run)
    except Exception as exc:
        message = f"could not submit to Ray at {ray.address}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
        store.set_tags(client, run.info.run_id, {store.MESSAGE: message, store.STATE: store.STATE_DONE})
        client.set_terminated(run.info.run_id, "FAILED")
        raise MiniAutoMLError(f"job {run.info.run_id}: {message}") from None


def reconcile(settings: Settings, client: "MlflowClient", run: "Run") -> "Run":
    """Bring a Ray job's run up to date with Ray; record its end once Ray reports one."""
    if run.data.tags.get(store.STATE) == store.STATE_DONE:
        return run
    run_id = run.info.run_id
    address = store.read_record(settings, run_id).get("ray_address")
    try:
        ray = RayBackend.connect(settings, address)
        ray_status, details = ray.status(run_id)
    except Exception as exc:  # the cluster is gone, or forgot the job: it will never report
        with store.queue_lock(settings):
            run = client.get_run(run_id)
            if run.data.tags.get(store.STATE) == store.STATE_DONE:
                return run
            message = f"the Ray cluster no longer knows this job ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})"
            store.set_tags(client, run_id, {store.MESSAGE: message, store.STATE: store.STATE_DONE})
            client.set_terminated(run_id, "KILLED" if run.data.tags.get(store.CANCEL) == "1" else "FAILED")
            return client.get_run(run_id)
    store.update_record(settings, run_id, **{RAY_STATUS: ray_status, RAY_NODE: details["node"]})
    if ray_status not in RAY_TERMINAL:
        return client.get_run(run_id)
    from miniautoml.jobs.runner import Runner

    with store.queue_lock(settings):
        run = client.get_run(run_id)
        if run.data.tags.get(store.STATE) == store.STATE_DONE:
            return run
        logs = store.logs_dir(settings)
        shutil.rmtree(logs / f"{run_id}.storage", ignore_errors=True)
        log_path = logs / f"{run_id}.err.log"
        try:
            log_path.write_text(ray.logs(run_id), encoding="utf-8")
        except Exception:  # the message then comes from Ray alone
            log_path.unlink(missing_ok=True)
        store.update_record(settings, run_id, **{store.LOG_STDERR: str(log_path)})
        if ray_status == "SUCCEEDED":
            rc = 0
        else:
            rc = details["exit_code"] if isinstance(details["exit_code"], int) and details["exit_code"] > 0 else 1
        if ray_status == "STOPPED" and run.data.tags.get(store.CANCEL) != "1":
            store.set_tags(client, run_id, {store.CANCEL: "1"})  # stopped on Ray (`ray job stop`)
        Runner(settings).finalise(run_id, rc, log_path)
        run = client.get_run(run_id)
        if ray_status == "FAILED" and not log_path.is_file() and details["message"]:
            store.set_tags(client, run_id, {store.MESSAGE: details["message"].splitlines()[0][:500]})
            run = client.get_run(run_id)
        return run


def local_logs(settings: Settings, run_id: str) -> str:
    """A local job's stdout and stderr logs, as the runner wrote them."""
    record = store.read_record(settings, run_id)
    parts = []
    for key in (store.LOG_STDOUT, store.LOG_STDERR):
        path = record.get(key)
        if path and Path(path).is_file():
            parts.append(Path(path).read_text(encoding="utf-8", errors="replace"))
    if not parts:
        raise UserInputError(f"job {run_id}: no logs on this host (yet)")
    return "".join(parts)
