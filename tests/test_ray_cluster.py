"""Training jobs on a real 2-node Ray cluster on this machine, tracked by a real `mlflow server` on
PostgreSQL, datasets on a real S3 server (moto): a head (`miniautoml cluster up`) and a worker node
(Ray's own `ray start --address`, ports and temp dir of its own), as a second machine would join.
Nodes get what a job names (jobs/shipping.py): the code, the workspace's git revision, and the
snapshot's bytes from S3; the submitter's copy of the dataset's bytes is deleted before any job
runs, so a job that read the submitter's workspace would fail. Plus the rule that needs no
cluster: which tracking stores a cluster beyond this machine refuses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import BIN, CLINC, S3Server, csv_slice, job_cli, wait_until
from mlflow_server_support import running_mlflow_server
from postgres_support import PostgresServer

from miniautoml.jobs import backends
from miniautoml.processes import Command, free_port, spawn

LONG_JOB = ("-P", "epochs=5000", "-P", "patience=0")  # killed or cancelled long before its end, however fast the machine
LOCAL = {"127.0.0.1", "localhost", "10.0.0.5"}


# --- the SQLite refusal rule (no cluster) -----------------------------------------------------
@pytest.mark.parametrize("uri", ["sqlite:////ws/.miniautoml/mlflow.db", "file:///ws/mlruns", "/ws/mlruns"])
def test_local_store_is_refused_when_a_node_is_elsewhere(uri: str):
    problem = backends.local_store_problem(uri, "http://127.0.0.1:8265", ["127.0.0.1", "10.0.0.9"], LOCAL)
    assert problem and "10.0.0.9" in problem and "MLflow server" in problem and "\n" not in problem


def test_local_store_is_refused_when_the_ray_address_is_remote():
    problem = backends.local_store_problem("sqlite:///mlflow.db", "http://ray-head.example:8265", [], LOCAL)
    assert problem and "ray-head.example" in problem


def test_local_store_is_fine_on_a_cluster_of_this_machine_only():
    assert backends.local_store_problem("sqlite:///m.db", "http://127.0.0.1:8265", ["127.0.0.1", "10.0.0.5"], LOCAL) is None


@pytest.mark.parametrize("uri", ["http://mlflow:5000", "https://mlflow.example", "postgresql://u@db/mlflow"])
def test_a_tracking_server_is_fine_anywhere(uri: str):
    assert backends.local_store_problem(uri, "http://ray-head.example:8265", ["10.0.0.9"], LOCAL) is None


def test_submit_with_sqlite_to_a_remote_cluster_is_one_line_and_queues_nothing(tmp_path: Path):
    ws = tmp_path / "ws"
    (ws / ".miniautoml").mkdir(parents=True)
    data = csv_slice(CLINC / "demo-part1.csv", tmp_path / "slice.csv", 10)
    remote = "http://203.0.113.7:8265"  # TEST-NET-3: never this machine
    result = job_cli(ws, "train", "submit", "--backend", "ray", "--data-path", str(data), "--model-name", "m",
                     env={"MINIAUTOML_RAY_ADDRESS": remote}, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.error_line]
    assert "sqlite:" in result.error_line and "203.0.113.7" in result.error_line and "miniautoml up" in result.error_line
    assert job_cli(ws, "train", "list").json == []


# --- a real 2-node cluster ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tracking_server(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory):
    """`mlflow server` on a database of its own in the session's PostgreSQL."""
    root = tmp_path_factory.mktemp("ray-mlflow")
    postgres_server.psql("CREATE DATABASE ray_cluster", database="postgres")
    with running_mlflow_server(root, postgres_server.uri("ray_cluster")) as url:
        yield url


def _kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal `pid` and every descendant (a worker node: `ray start`, raylet, its workers, jobs)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=15)


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory, tracking_server: str, s3_server: S3Server):
    """A workspace tracked by the server with a dataset on S3 (its local bytes deleted), its head
    (`cluster up --num-cpus 1`) and a worker node (`ray start --address <gcs> --num-cpus 1`); the
    worker's tree is killed and the head taken `down` in the end (never `ray stop`: it would stop
    every Ray on the machine)."""
    pytest.importorskip("ray.job_submission", reason="the `ray` extra is not installed")
    root = tmp_path_factory.mktemp("ray-2")
    ws = root / "ws"
    (ws / ".miniautoml").mkdir(parents=True)
    env = {"MLFLOW_TRACKING_URI": tracking_server, **s3_server.env()}
    data = csv_slice(CLINC / "demo-part1.csv", root / "slice.csv", 300)
    created = job_cli(ws, "dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data), env=env)
    assert created.returncode == 0, created.stderr[-2000:]
    vhash = job_cli(ws, "dataset", "prepare", "intents", env=env).json["version_hash"]
    local_bytes = _drop_local_dataset_bytes(ws)
    worker_tmp = tempfile.mkdtemp(prefix="mam-rayw-")  # short: Ray's socket paths live there
    worker = None
    try:
        up = job_cli(ws, "cluster", "up", "--num-cpus", "1", env=env, timeout=120)
        assert up.returncode == 0, up.stderr[-2000:]
        argv = [str(BIN / "ray"), "start", "--address", up.json["gcs_address"], "--block",
                "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", "100000000",
                "--temp-dir", worker_tmp, "--disable-usage-stats"]
        for name in ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
                     "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port"):
            argv += [f"--{name}", str(free_port())]
        worker = spawn(Command(argv, ws, {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0"},
                               unset=("RAY_ADDRESS", "MLFLOW_RUN_ID")), log=root / "worker.log", name="ray worker")
        def joined() -> dict | None:  # the head's state API is the readiness check
            assert worker.running(), (root / "worker.log").read_text()[-2000:]
            status = job_cli(ws, "cluster", "status", env=env).json
            return status if status["node_count"] >= 2 else None

        status = wait_until(joined, 90, "the worker node to join", interval=1)
        yield SimpleNamespace(ws=ws, env=env, up=up.json, status=status, worker=worker, data=data, vhash=vhash,
                              local_bytes=local_bytes)
    finally:
        if worker is not None:
            _kill_tree(worker.pid)
        down = job_cli(ws, "cluster", "down", env=env, timeout=60)
        shutil.rmtree(worker_tmp, ignore_errors=True)
        assert down.returncode == 0, down.stderr[-2000:]


def _drop_local_dataset_bytes(ws: Path) -> list[Path]:
    """Delete what DVC tracks in `ws` (each `x.dvc`'s `x`) and its cache: only metadata is left."""
    tracked = [p.with_suffix("") for p in ws.rglob("*.dvc") if p.is_file() and ".dvc" not in p.parent.parts]
    assert tracked, "the dataset tracks nothing with DVC"
    for path in [*tracked, ws / ".dvc" / "cache"]:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return tracked


def _submit(c: SimpleNamespace, *params: str, model: str = "intent") -> str:
    result = job_cli(c.ws, "train", "submit", "--backend", "ray", "--dataset", "intents", "--version-hash", c.vhash,
                     "--model-name", model, *params, env=c.env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.json["job_id"]


def _wait_running(c: SimpleNamespace, job_id: str, timeout: float = 120) -> dict:
    def running() -> dict | None:
        status = job_cli(c.ws, "train", "status", job_id, env=c.env).json
        assert status["status"] in ("waiting", "launch", "running"), status
        return status if status["status"] == "running" else None

    return wait_until(running, timeout, f"job {job_id} to run", interval=1)


@pytest.mark.slow
def test_status_lists_both_nodes_and_how_to_join(two_nodes):
    status = two_nodes.status
    assert status["node_count"] == 2 and len({n["node_id"] for n in status["nodes"]}) == 2
    assert sorted(n["head"] for n in status["nodes"] if n["alive"]) == [False, True]
    assert status["join"] == f"ray start --address {two_nodes.up['gcs_address']}"


@pytest.mark.slow
def test_four_jobs_succeed_across_both_nodes(two_nodes):
    from mlflow import MlflowClient

    job_ids = [_submit(two_nodes, "-P", "epochs=1") for _ in range(4)]
    ended = [job_cli(two_nodes.ws, "train", "wait", job_id, "--timeout", "300", env=two_nodes.env, timeout=330)
             for job_id in job_ids]
    assert [e.returncode for e in ended] == [0] * 4, [e.stdout[-500:] + e.stderr[-1000:] for e in ended]
    assert {e.json["status"] for e in ended} == {"succeed"}
    alive = {n["node_id"] for n in two_nodes.status["nodes"] if n["alive"]}
    assert {e.json["metadata"]["node"] for e in ended} == alive  # both nodes ran jobs
    assert all(e.json["metadata"]["node_ip"] for e in ended)
    client = MlflowClient(two_nodes.env["MLFLOW_TRACKING_URI"], two_nodes.env["MLFLOW_TRACKING_URI"])
    runs = [client.get_run(job_id) for job_id in job_ids]
    assert {r.data.tags[backends.NODE_TAG].split()[0] for r in runs} == alive  # the runs themselves say where they ran
    rev = subprocess.run(["git", "-C", str(two_nodes.ws), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert {(r.data.tags["workspace_rev"], r.data.tags["version_hash"]) for r in runs} == {(rev, two_nodes.vhash)}
    assert not any(p.exists() for p in two_nodes.local_bytes)  # the bytes came from S3 into the nodes' copies


@pytest.mark.slow
def test_a_sweep_of_six_trials_in_pairs_runs_nested_across_both_nodes(two_nodes):
    from mlflow import MlflowClient

    result = job_cli(two_nodes.ws, "train", "sweep", "--backend", "ray", "--dataset", "intents", "--version-hash", two_nodes.vhash,
                     "--model-name", "swept", "--trials", "6", "--parallel", "2", "--seed", "1",
                     "-P", "epochs=1", "-P", "lr=tag(log, interval(1e-3, 1e-1))", env=two_nodes.env, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    swept = result.json
    assert [t["status"] for t in swept["trials"]] == ["succeed"] * 6
    client = MlflowClient(two_nodes.env["MLFLOW_TRACKING_URI"], two_nodes.env["MLFLOW_TRACKING_URI"])
    trials = [client.get_run(t["run_id"]) for t in swept["trials"]]
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {swept["sweep_id"]}
    alive = {n["node_id"] for n in two_nodes.status["nodes"] if n["alive"]}
    assert {r.data.tags[backends.NODE_TAG].split()[0] for r in trials} == alive  # both nodes ran trials
    versions = client.search_model_versions("name = 'swept'")
    assert [(v.version, v.run_id) for v in versions] == [(swept["model_version"], swept["best_run_id"])]


@pytest.mark.slow
def test_worker_node_killed_mid_job_fails_that_job_and_the_queue_goes_on(two_nodes):
    """Two long jobs take both nodes' CPUs and a third waits; the worker node is SIGKILLed."""
    first, second = _submit(two_nodes, *LONG_JOB, model="long"), _submit(two_nodes, *LONG_JOB, model="long")
    running = {job_id: _wait_running(two_nodes, job_id)["metadata"]["node"] for job_id in (first, second)}
    worker_node = next(n["node_id"] for n in two_nodes.status["nodes"] if n["alive"] and not n["head"])
    assert worker_node in running.values()  # one CPU per node: one of them runs on the worker
    on_worker = next(job_id for job_id, node in running.items() if node == worker_node)
    on_head = next(job_id for job_id in running if job_id != on_worker)
    queued = _submit(two_nodes, "-P", "epochs=1", model="after")

    _kill_tree(two_nodes.worker.pid)
    lost = job_cli(two_nodes.ws, "train", "wait", on_worker, "--timeout", "120", env=two_nodes.env, timeout=150)
    assert lost.returncode == 1, lost.stderr[-2000:]
    assert lost.json["status"] == "failure" and lost.json["metadata"]["mlflow_status"] == "FAILED"
    assert f"the Ray node {worker_node}" in lost.json["message"] and "died" in lost.json["message"]

    cancelled = job_cli(two_nodes.ws, "train", "cancel", on_head, env=two_nodes.env)
    assert cancelled.returncode == 0, (cancelled.stderr[-1000:],
                                       job_cli(two_nodes.ws, "train", "status", on_head, env=two_nodes.env).stdout)
    after = job_cli(two_nodes.ws, "train", "wait", queued, "--timeout", "240", env=two_nodes.env, timeout=270)
    assert after.returncode == 0, after.stdout[-1000:] + after.stderr[-2000:]
    assert after.json["status"] == "succeed" and after.json["metadata"]["node"] != worker_node
