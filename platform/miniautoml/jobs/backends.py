"""Where a training job runs: `local` (the workspace's runner processes, jobs/runner.py) or `ray`
(a Ray Job on a Ray cluster, e.g. the one `miniautoml cluster up` started).

The choice: `train submit --backend`, else `MINIAUTOML_JOBS_BACKEND`, else `[jobs] backend` in
miniautoml.toml, else `local`. A job records its backend as the run tag `miniautoml.backend`.

A Ray job's submission id IS the MLflow run id; its entrypoint is the same `mlflow run --run-id`
the local runner launches, with the workspace's tool environment in `runtime_env.env_vars`. Ray's
states map to the book's: PENDING -> launch, RUNNING -> running, SUCCEEDED -> succeed,
FAILED/STOPPED -> failure (message: the last telling line of the job's log). Whoever reads the job
next (status, wait, list) records its end, like the runner does for local jobs.

On a cluster of several machines (docs/deploy/ray-cluster.md) a node gets only what the job names:
its run id, parameters and environment. The code, the Python environment and the workspace (or the
CSV of a `--data-path` job) must be at the same paths on the node; the entrypoint checks that first
and fails with one line naming what is missing. Tracking must be an MLflow server: submitting with
a SQLite/file store to a cluster with a node elsewhere is refused. A job whose driver node died
ends failure with that said, whether Ray already reports it FAILED or still RUNNING.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

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
RAY_STATUS, RAY_NODE, RAY_NODE_IP = "ray_status", "ray_node", "ray_node_ip"
RAY_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
NODE_TAG = "miniautoml.ray_node"  # run tag: "<node id> <ip>" of the node that ran the job
MISSING_ON_NODE = "miniautoml: the Ray node"  # how the entrypoint's preflight line starts
LOCAL_STORE_SCHEMES = ("", "file", "sqlite")  # tracking stores that are a path on this disk


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


def local_store_problem(tracking_uri: str, ray_address: str, node_ips: list[str], local: set[str]) -> str | None:
    """Why jobs on this cluster cannot reach the tracking store, or None. A SQLite or file store
    is a path on this disk: fine while the cluster is only this machine (its address and every
    alive node's IP are `local`), meaningless on any other node."""
    scheme = urlparse(tracking_uri).scheme.lower()
    if scheme.split("+")[0] not in LOCAL_STORE_SCHEMES:
        return None  # a server (http, databricks, postgresql...): reachable by URL
    host = urlparse(ray_address if "://" in ray_address else f"ray://{ray_address}").hostname or ""
    elsewhere = sorted({ip for ip in node_ips if ip not in local} | ({host} if host not in local else set()))
    if not elsewhere:
        return None
    return (f"jobs backend ray: tracking store {tracking_uri} is a path on this machine and means nothing on "
            f"Ray node(s) at {', '.join(elsewhere)}; run an MLflow server (`miniautoml up`) and set MLFLOW_TRACKING_URI to it")


def check_tracking_reachable(settings: Settings, address: str) -> None:
    """UserInputError when the workspace's tracking store is a local path and the cluster at
    `address` is not only this machine (see local_store_problem)."""
    from miniautoml import cluster

    try:
        node_ips = [n["ip"] for n in cluster.nodes(address) if n["alive"] and n["ip"]]
    except OSError:  # an old or proxied head without the state API: its address alone decides
        node_ips = []
    problem = local_store_problem(settings.tracking_uri, address, node_ips, cluster.local_ips())
    if problem:
        raise UserInputError(problem)


def entrypoint(settings: Settings, run: "Run", argv: list[str]) -> str:
    """The job's shell command on its node: first check that what the job reads by path is there
    (one line naming the first thing missing, exit 3), then `mlflow run` in the project."""
    needs = [("project checkout", PROJECT_ROOT), ("Python environment", Path(sys.executable))]
    data_path = run.data.tags.get(store.DATA_PATH)
    if data_path:
        needs += [("--data-path file", Path(p)) for p in data_path.split(os.pathsep) if p.strip()]
    else:  # the trainer resolves the dataset version in the workspace's git/DVC metadata
        needs.append(("workspace", settings.workspace))
    checks = " && ".join(f"need {shlex.quote(what)} {shlex.quote(str(path))}" for what, path in needs)
    need = (f'need() {{ [ -e "$2" ] || {{ echo "{MISSING_ON_NODE} $(hostname) has no $1 at $2 '
            '(a node needs the same checkout, environment and inputs: docs/deploy/ray-cluster.md)" >&2; exit 3; }; }')
    return f"{need}; {checks} && cd {shlex.quote(str(PROJECT_ROOT))} && exec {shlex.join(argv)}"


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
        """The job's recorded cluster at `address`; without one, the configured cluster for a new
        job (submit), refused when the tracking store cannot be reached from its nodes."""
        if address:
            return cls(address)
        address = ray_address(settings)
        check_tracking_reachable(settings, address)  # before connecting: the address may decide
        return cls(address)

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
            entrypoint=entrypoint(settings, run, argv),
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

    def node(self, node_id: str | None) -> dict[str, Any] | None:
        """The cluster's record of node `node_id` (cluster.nodes), None when unknown or unreadable."""
        from miniautoml import cluster

        if not node_id:
            return None
        try:
            return next((n for n in cluster.nodes(self.address) if n["node_id"] == node_id), None)
        except OSError:
            return None


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
    """Bring a Ray job's run up to date with Ray; record its end once Ray reports one, or once the
    node running its driver is dead (Ray may still say RUNNING until it notices)."""
    if run.data.tags.get(store.STATE) == store.STATE_DONE:
        return run
    run_id = run.info.run_id
    record = store.read_record(settings, run_id)
    try:
        ray = RayBackend(record.get("ray_address") or ray_address(settings))
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
    node_id = details["node"]
    node = ray.node(node_id) if node_id and (ray_status == "RUNNING" or ray_status == "FAILED"
                                              or record.get(RAY_NODE) != node_id) else None
    store.update_record(settings, run_id, **{RAY_STATUS: ray_status, RAY_NODE: node_id,
                                             RAY_NODE_IP: (node or {}).get("ip") or record.get(RAY_NODE_IP)})
    if node and run.data.tags.get(NODE_TAG) is None:
        store.set_tags(client, run_id, {NODE_TAG: f"{node_id} {node['ip']}"})
    node_died = node is not None and not node["alive"] and ray_status != "SUCCEEDED"
    if ray_status not in RAY_TERMINAL and not node_died:
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
        except Exception:  # the message then comes from Ray alone (a dead node's logs are gone)
            log_path.unlink(missing_ok=True)
        store.update_record(settings, run_id, **{store.LOG_STDERR: str(log_path) if log_path.is_file() else None})
        missing = _missing_on_node(log_path)
        if node_died and run.data.tags.get(store.CANCEL) != "1":
            if ray_status not in RAY_TERMINAL:  # Ray has not noticed yet: stop its record of the job
                try:
                    ray.cancel(run_id)
                except Exception:
                    pass
            why = (node.get("state_message") or "").splitlines()[:1]
            Runner(settings).fail(run_id, f"the Ray node {node_id} ({node['ip']}) running this job died"
                                  + (f": {why[0][:300]}" if why else ""))
            return client.get_run(run_id)
        if missing:
            Runner(settings).fail(run_id, missing)
            return client.get_run(run_id)
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


def _missing_on_node(log_path: Path) -> str | None:
    """The entrypoint's preflight line (what the node lacks), if the job stopped there."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return next((line.strip() for line in text.splitlines() if line.startswith(MISSING_ON_NODE)), None)


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
