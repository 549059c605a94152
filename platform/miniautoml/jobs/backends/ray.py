"""The `ray` job backend: a job is a Ray Job on a Ray cluster (e.g. the one `miniautoml cluster up`
started), submitted at `train submit`; Ray queues what its CPUs cannot hold yet.

A Ray job's submission id IS the MLflow run id; its entrypoint is the same `mlflow run --run-id`
the local runner launches, run on the node in a package of what the job names (jobs/shipping.py:
the code, the workspace's git revision or the CSV files, the tracking and storage environment).
Ray's states map to the book's: PENDING -> launch, RUNNING -> running, SUCCEEDED -> succeed,
FAILED/STOPPED -> failure (message: the last telling line of the job's log; jobs/outcome.py).
Whoever reads the job next (status, wait, list) records its end (jobs/finish.py), as the runner
does for local jobs.

On a cluster of several machines (docs/deploy/ray-cluster.md) a node needs only Ray, git and a
Python environment with the platform's dependencies. Tracking must be an MLflow server and a
dataset job's DVC remote S3: submitting with a SQLite/file store or the embedded local remote to a
cluster with a node elsewhere is refused. A job whose driver node died ends failure with that
said, whether Ray already reports it FAILED or still RUNNING.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from miniautoml.config import Setting, Settings
from miniautoml.errors import MiniAutoMLError, UserInputError
from miniautoml.jobs import finish, outcome, shipping, store

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

RAY = "ray"
RAY_ADDRESS_ENV = "MINIAUTOML_RAY_ADDRESS"
RAY_ADDRESS = Setting("jobs", "ray_address", (RAY_ADDRESS_ENV,))
# the local record's keys for Ray jobs
RAY_STATUS, RAY_NODE, RAY_NODE_IP = "ray_status", "ray_node", "ray_node_ip"
RAY_TERMINAL = outcome.RAY_TERMINAL
NODE_TAG = "miniautoml.ray_node"  # run tag: "<node id> <ip>" of the node that ran the job
LOCAL_STORE_SCHEMES = ("", "file", "sqlite")  # tracking stores that are a path on this disk


def ray_address(settings: Settings) -> str:
    """`MINIAUTOML_RAY_ADDRESS`, else `[jobs] ray_address`, else the cluster `cluster up` recorded."""
    from miniautoml import cluster

    address = settings.get(RAY_ADDRESS).value or cluster.recorded_address(settings)
    if not address:
        raise UserInputError(
            "jobs backend ray: no Ray cluster; start one with `miniautoml cluster up` "
            f"(or set {RAY_ADDRESS_ENV} / [jobs] ray_address)"
        )
    return address


def _elsewhere(ray_address: str, node_ips: list[str], local: set[str]) -> list[str]:
    """The cluster's hosts that are not this machine: its address's and its alive nodes' IPs."""
    host = urlparse(ray_address if "://" in ray_address else f"ray://{ray_address}").hostname or ""
    return sorted({ip for ip in node_ips if ip not in local} | ({host} if host not in local else set()))


def local_store_problem(tracking_uri: str, ray_address: str, node_ips: list[str], local: set[str]) -> str | None:
    """Why jobs on this cluster cannot reach the tracking store, or None. A SQLite or file store
    is a path on this disk: fine while the cluster is only this machine (its address and every
    alive node's IP are `local`), meaningless on any other node."""
    scheme = urlparse(tracking_uri).scheme.lower()
    if scheme.split("+")[0] not in LOCAL_STORE_SCHEMES:
        return None  # a server (http, databricks, postgresql...): reachable by URL
    elsewhere = _elsewhere(ray_address, node_ips, local)
    if not elsewhere:
        return None
    return (f"jobs backend ray: tracking store {tracking_uri} is a path on this machine and means nothing on "
            f"Ray node(s) at {', '.join(elsewhere)}; run an MLflow server (`miniautoml up`) and set MLFLOW_TRACKING_URI to it")


def local_remote_problem(remote_dir: Path | None, ray_address: str, node_ips: list[str], local: set[str]) -> str | None:
    """Why a dataset job's node cannot download the snapshot, or None: the embedded DVC remote
    (`remote_dir`; None when storage is S3) is a directory of this machine, like a SQLite store."""
    elsewhere = _elsewhere(ray_address, node_ips, local) if remote_dir is not None else []
    if not elsewhere:
        return None
    return (f"jobs backend ray: the DVC remote {remote_dir} is a directory on this machine and means nothing on "
            f"Ray node(s) at {', '.join(elsewhere)}; keep datasets on S3 (MINIAUTOML_S3_ENDPOINT or [storage] endpoint)")


def check_reachable(settings: Settings, address: str, dataset: bool) -> None:
    """UserInputError when the cluster at `address` is not only this machine and the tracking store
    (or, for a `dataset` job, the DVC remote) is a local path (see the two *_problem rules)."""
    from miniautoml import cluster

    try:
        node_ips = [n["ip"] for n in cluster.nodes(address) if n["alive"] and n["ip"]]
    except OSError:  # an old or proxied head without the state API: its address alone decides
        node_ips = []
    local = cluster.local_ips()
    remote_dir = None if settings.storage.is_s3 or not dataset else settings.local_remote
    problem = (local_store_problem(settings.tracking_uri, address, node_ips, local)
               or local_remote_problem(remote_dir, address, node_ips, local))
    if problem:
        raise UserInputError(problem)


class RayBackend:
    """Ray Jobs through `ray.job_submission.JobSubmissionClient` (jobs/backends JobBackend)."""

    name = RAY

    def __init__(self, settings: Settings, address: str, client: "MlflowClient | None" = None):
        self.settings, self.address = settings, address
        from miniautoml.adapters import mlflow as mlflow_adapter

        self.mlflow: MlflowClient = client or mlflow_adapter.client(settings)
        self._jobs: Any = None

    @classmethod
    def connect(cls, settings: Settings, address: str | None = None, dataset: bool = False,
                client: "MlflowClient | None" = None) -> "RayBackend":
        """Connected to the job's recorded cluster at `address`; without one, to the configured
        cluster for a new job (submit), refused when the tracking store (for a `dataset` job, also
        the DVC remote) cannot be reached from its nodes."""
        if not address:
            address = ray_address(settings)
            check_reachable(settings, address, dataset)  # before connecting: the address may decide
        backend = cls(settings, address, client)
        backend.jobs  # noqa: B018 - connect now: no cluster is one line before anything is queued
        return backend

    @classmethod
    def of_job(cls, settings: Settings, run_id: str, client: "MlflowClient | None" = None) -> "RayBackend":
        """The backend of a submitted job: the cluster its record names, else the configured one
        (resolved and connected when first used)."""
        return cls(settings, store.read_record(settings, run_id).get("ray_address") or "", client)

    @property
    def jobs(self) -> Any:
        """Ray's `JobSubmissionClient`, connected on first use."""
        if self._jobs is None:
            self.address = self.address or ray_address(self.settings)
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError:
                raise UserInputError("jobs backend ray: Ray is not installed (pip install -e '.[ray]')") from None
            try:
                self._jobs = JobSubmissionClient(self.address)
            except Exception as exc:  # ConnectionError and friends, worded by Ray
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise UserInputError(
                    f"jobs backend ray: no Ray cluster answers at {self.address} ({first}); "
                    "start one with `miniautoml cluster up`"
                ) from None
        return self._jobs

    # -- JobBackend ------------------------------------------------------------------------------
    def submit(self, run: "Run") -> None:
        """Submit the job's `mlflow run` as Ray Job `run_id`; on a refusal the job ends failure
        and the error is raised."""
        try:
            self._submit(run)
        except Exception as exc:
            message = f"could not submit to Ray at {self.address}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
            finish.fail(self.settings, self.mlflow, run.info.run_id, message)
            raise MiniAutoMLError(f"job {run.info.run_id}: {message}") from None

    def _submit(self, run: "Run") -> None:
        from miniautoml.jobs.launch import launch_spec

        run_id = run.info.run_id
        with tempfile.TemporaryDirectory(prefix="miniautoml-ship-") as tmp:
            shipment = shipping.stage(self.settings, run, Path(tmp))
            spec = launch_spec(run)
            if shipment.data_path:
                spec = replace(spec, params={**spec.params, "data_path": shipment.data_path})
            self.jobs.submit_job(  # uploads the package (once per content) before it returns
                entrypoint=shipping.entrypoint(shipment, spec.argv(project=".", mlflow=[])),
                submission_id=run_id,
                runtime_env={"working_dir": tmp, "env_vars": shipment.env},
                entrypoint_num_cpus=1,  # a job takes a CPU: Ray queues what does not fit
                metadata={"miniautoml_workspace": str(self.settings.workspace),
                          "miniautoml_workspace_rev": shipment.workspace_rev or ""},
            )
        store.update_record(self.settings, run_id, ray_address=self.address, launched_at=store.now_iso())

    def status(self, run: "Run") -> "Run":
        """The job's run brought up to date with Ray; its end recorded once Ray reports one, or
        once the node running its driver is dead (Ray may still say RUNNING until it notices)."""
        if run.data.tags.get(store.STATE) == store.STATE_DONE:
            return run
        run_id, client = run.info.run_id, self.mlflow
        record = store.read_record(self.settings, run_id)
        try:
            ray_status, details = self.ray_status(run_id)
        except Exception as exc:  # the cluster is gone, or forgot the job: it will never report
            with store.queue_lock(self.settings):
                run = client.get_run(run_id)
                if run.data.tags.get(store.STATE) == store.STATE_DONE:
                    return run
                why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                finish.fail(self.settings, client, run_id, f"the Ray cluster no longer knows this job ({why})",
                            "KILLED" if run.data.tags.get(store.CANCEL) == "1" else "FAILED")
                return client.get_run(run_id)
        node_id = details["node"]
        node = self.node(node_id) if node_id and (ray_status in ("RUNNING", "FAILED")
                                                  or record.get(RAY_NODE) != node_id) else None
        store.update_record(self.settings, run_id, **{RAY_STATUS: ray_status, RAY_NODE: node_id,
                                                      RAY_NODE_IP: (node or {}).get("ip") or record.get(RAY_NODE_IP)})
        if node and run.data.tags.get(NODE_TAG) is None:
            store.set_tags(client, run_id, {NODE_TAG: f"{node_id} {node['ip']}"})
        node_died = node is not None and not node["alive"] and ray_status != "SUCCEEDED"
        if ray_status not in RAY_TERMINAL and not node_died:
            return client.get_run(run_id)
        with store.queue_lock(self.settings):
            run = client.get_run(run_id)
            if run.data.tags.get(store.STATE) == store.STATE_DONE:
                return run
            self._record_end(run, ray_status, details, node if node_died else None)
            return client.get_run(run_id)

    def _record_end(self, run: "Run", ray_status: str, details: dict[str, Any], dead_node: dict[str, Any] | None) -> None:
        """Record the end of a job Ray reports ended (or whose driver's node died), under the queue lock."""
        run_id, client = run.info.run_id, self.mlflow
        log_path = store.logs_dir(self.settings) / f"{run_id}.err.log"
        try:
            log_path.write_text(self.jobs.get_job_logs(run_id), encoding="utf-8")
        except Exception:  # the message then comes from Ray alone (a dead node's logs are gone)
            log_path.unlink(missing_ok=True)
        store.update_record(self.settings, run_id, **{store.LOG_STDERR: str(log_path) if log_path.is_file() else None})
        cancelled = run.data.tags.get(store.CANCEL) == "1"
        if dead_node is not None and not cancelled:
            if ray_status not in RAY_TERMINAL:  # Ray has not noticed yet: stop its record of the job
                try:
                    self.cancel(run_id)
                except Exception:
                    pass
            why = (dead_node.get("state_message") or "").splitlines()[:1]
            finish.fail(self.settings, client, run_id, f"the Ray node {details['node']} ({dead_node['ip']}) running "
                        "this job died" + (f": {why[0][:300]}" if why else ""))
            return
        missing = _missing_on_node(log_path)
        if missing:
            finish.fail(self.settings, client, run_id, missing)
            return
        if ray_status == "STOPPED" and not cancelled:
            store.set_tags(client, run_id, {store.CANCEL: "1"})  # stopped on Ray (`ray job stop`)
        finish.finish(self.settings, client, run_id, outcome.ray_exit(ray_status, details["exit_code"]), log_path)
        if ray_status == "FAILED" and not log_path.is_file() and details["message"]:
            store.set_tags(client, run_id, {store.MESSAGE: details["message"].splitlines()[0][:500]})

    def cancel(self, run_id: str) -> None:
        self.jobs.stop_job(run_id)

    def logs(self, run_id: str) -> str:
        """Ray's logs of the job; once its cluster is gone, what was saved when the job ended."""
        try:
            return self.jobs.get_job_logs(run_id)
        except UserInputError:
            from miniautoml.jobs.backends.local import LocalBackend

            return LocalBackend(self.settings).logs(run_id)

    def outcome(self, run_id: str) -> outcome.Exit | None:
        """How the job's driver ended, as Ray reports it; None while Ray runs (or queues) it."""
        ray_status, details = self.ray_status(run_id)
        return outcome.ray_exit(ray_status, details["exit_code"]) if ray_status in RAY_TERMINAL else None

    # -- Ray's view ------------------------------------------------------------------------------
    def ray_status(self, run_id: str) -> tuple[str, dict[str, Any]]:
        """Ray's status name and details (node, exit code, message)."""
        info = self.jobs.get_job_info(run_id)
        status = getattr(info.status, "value", str(info.status))
        return status, {
            "node": getattr(info, "driver_node_id", None),
            "exit_code": getattr(info, "driver_exit_code", None),
            "message": info.message or "",
        }

    def node(self, node_id: str | None) -> dict[str, Any] | None:
        """The cluster's record of node `node_id` (cluster.nodes), None when unknown or unreadable."""
        from miniautoml import cluster

        if not node_id:
            return None
        try:
            return next((n for n in cluster.nodes(self.address) if n["node_id"] == node_id), None)
        except OSError:
            return None


def _missing_on_node(log_path: Path) -> str | None:
    """The entrypoint's preflight line (what the node lacks), if the job stopped there."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return next((line.strip() for line in text.splitlines() if line.startswith(shipping.MISSING_ON_NODE)), None)
