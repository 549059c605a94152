"""Training jobs on a real local Ray cluster (`miniautoml cluster up`, `train submit --backend ray`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import CLINC, csv_slice, job_cli, new_job_workspace, wait_until

pytest.importorskip("ray.job_submission", reason="the `ray` extra is not installed")

pytestmark = pytest.mark.slow
LONG_JOB = ("-P", "epochs=5000", "-P", "patience=0")  # cancelled long before its end, however fast the machine


@pytest.fixture(scope="module")
def ray_ws(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path):
    """A job workspace with a Ray head (`cluster up --num-cpus 1`), always taken `down`."""
    root = tmp_path_factory.mktemp("ray")
    ws = new_job_workspace(root, mlflow_template)
    up = job_cli(ws, "cluster", "up", "--num-cpus", "1", timeout=120)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        yield ws, up.json
    finally:
        down = job_cli(ws, "cluster", "down", timeout=60)
        assert down.returncode == 0, down.stderr[-2000:]


@pytest.fixture(scope="module")
def slice_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return csv_slice(CLINC / "demo-part1.csv", tmp_path_factory.mktemp("data") / "slice.csv", 300)


def test_cluster_up_status(ray_ws):
    ws, up = ray_ws
    assert up["state"] == "started" and up["address"].startswith("http://127.0.0.1:") and up["healthy"]
    status = job_cli(ws, "cluster", "status")
    assert status.returncode == 0
    assert status.json["state"] == "running" and status.json["address"] == up["address"]
    assert status.json["node_count"] == 1 and [n["head"] for n in status.json["nodes"]] == [True]
    assert status.json["join"] == f"ray start --address {up['gcs_address']}"
    again = job_cli(ws, "cluster", "up")  # reported, not restarted
    assert again.json["state"] == "running" and again.json["pid"] == up["pid"]


def test_ray_job_succeeds_and_registers(ray_ws, slice_csv: Path):
    ws, _ = ray_ws
    result = job_cli(ws, "train", "submit", "--backend", "ray", "--data-path", str(slice_csv),
                     "--model-name", "intent", "-P", "epochs=1", "--wait", "--timeout", "150", timeout=200)
    assert result.returncode == 0, result.stderr[-3000:]
    job = result.json
    assert job["status"] == "succeed" and job["metadata"]["model_version"] == "1"
    assert job["metadata"]["backend"] == "ray" and job["metadata"]["node"]
    status = job_cli(ws, "train", "status", job["job_id"]).json
    assert status["status"] == "succeed" and status["metadata"]["backend"] == "ray"
    logs = job_cli(ws, "train", "logs", job["job_id"])
    assert logs.returncode == 0 and "succeeded" in logs.stdout


def test_a_dataset_job_trains_on_a_checkout_of_the_workspace_revision(ray_ws, slice_csv: Path):
    """The node gets the workspace's git revision and pulls the snapshot from the (embedded) DVC
    remote into a copy of its own: the submitter's workspace is neither read for data nor written."""
    from mlflow import MlflowClient

    ws, _ = ray_ws
    assert job_cli(ws, "dataset", "create", "shipped", "--type", "TEXT_INTENT", "--file", str(slice_csv)).returncode == 0
    vhash = job_cli(ws, "dataset", "prepare", "shipped").json["version_hash"]
    rev = subprocess.run(["git", "-C", str(ws), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = job_cli(ws, "train", "submit", "--backend", "ray", "--dataset", "shipped", "--version-hash", vhash,
                     "--model-name", "shipped", "-P", "epochs=1", "--wait", "--timeout", "150", timeout=200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.json["status"] == "succeed"
    run = MlflowClient(f"sqlite:///{ws / '.miniautoml' / 'mlflow.db'}").get_run(result.json["job_id"])
    assert run.data.tags["workspace_rev"] == rev and run.data.tags["version_hash"] == vhash
    assert run.data.tags["mlflow.source.git.commit"]  # the checkout's code tags travel with the copy
    job_record = json.loads(Path(MlflowClient(f"sqlite:///{ws / '.miniautoml' / 'mlflow.db'}")
                                 .download_artifacts(run.info.run_id, "job.json")).read_text())
    assert not job_record["workspace"].startswith(str(ws))  # it trained in a copy of its own
    assert subprocess.run(["git", "-C", str(ws), "status", "--porcelain"], capture_output=True, text=True).stdout == ""


def test_cancel_running_ray_job(ray_ws, slice_csv: Path):
    ws, _ = ray_ws
    job_id = job_cli(ws, "train", "submit", "--backend", "ray", "--data-path", str(slice_csv),
                     "--model-name", "long", *LONG_JOB).json["job_id"]
    wait_until(lambda: job_cli(ws, "train", "status", job_id).json["status"] == "running", 90, "the Ray job to run",
               interval=1)  # fmt: skip
    cancel = job_cli(ws, "train", "cancel", job_id)
    assert cancel.returncode == 0, cancel.stderr[-2000:]
    ended = job_cli(ws, "train", "wait", job_id, "--timeout", "60")
    assert ended.returncode == 1, ended.stderr[-2000:]
    assert ended.json["status"] == "failure" and ended.json["message"] == "cancelled by user"
    assert ended.json["metadata"]["mlflow_status"] == "KILLED"


def ray_job_status(address: str, job_id: str) -> str:
    """What Ray says of the job, asked directly: no CLI call that could act on the queue."""
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(address).get_job_status(job_id).value)


def job_supervisor_pid(address: str, job_id: str) -> int | None:
    """The pid of the job's runner on Ray: its JobSupervisor actor (starts, watches and ends the
    entrypoint), from the state API."""
    import urllib.request

    query = f"filter_keys=name&filter_predicates=%3D&filter_values=_ray_internal_job_actor_{job_id}&detail=1"
    with urllib.request.urlopen(f"{address}/api/v0/actors?{query}", timeout=10) as resp:
        rows = json.load(resp)["data"]["result"]["result"]
    return next((row["pid"] for row in rows if row.get("state") == "ALIVE" and row.get("pid")), None)


def test_a_sigkilled_ray_job_runner_does_not_stall_the_queue(ray_ws, slice_csv: Path):
    """One CPU: a long job runs, the next waits in Ray's queue. SIGKILL the running job's runner
    (its JobSupervisor): Ray fails that job (its driver's group dies with it) and starts the queued
    one within seconds, with no command (bound 30 s, generous for the 10 s promised); the dead job
    reads as failure."""
    import os
    import signal

    ws, up = ray_ws
    submit = ("train", "submit", "--backend", "ray", "--data-path", str(slice_csv), "--model-name", "queued")
    first = job_cli(ws, *submit, *LONG_JOB).json["job_id"]
    second = job_cli(ws, *submit, "-P", "epochs=1").json["job_id"]
    wait_until(lambda: ray_job_status(up["address"], first) == "RUNNING", 120, "the first Ray job to run", interval=0.5)
    assert ray_job_status(up["address"], second) == "PENDING"  # the one CPU is taken

    os.kill(wait_until(lambda: job_supervisor_pid(up["address"], first), 30, "the job's supervisor"), signal.SIGKILL)
    wait_until(lambda: ray_job_status(up["address"], second) != "PENDING", 30, "the queued Ray job to start", interval=0.2)
    ended = job_cli(ws, "train", "wait", first, "--timeout", "60")
    assert ended.json["status"] == "failure" and ended.json["message"], ended.stdout
    assert job_cli(ws, "train", "wait", second, "--timeout", "150", timeout=200).json["status"] == "succeed"


def test_unknown_backend_is_one_line(ray_ws, slice_csv: Path):
    ws, _ = ray_ws
    result = job_cli(ws, "train", "submit", "--backend", "slurm", "--data-path", str(slice_csv), "--model-name", "m")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.error_line]
    assert "unknown jobs backend" in result.error_line


def test_ray_backend_without_cluster(tmp_path: Path, mlflow_template: Path, slice_csv: Path):
    ws = new_job_workspace(tmp_path, mlflow_template)
    result = job_cli(ws, "train", "submit", "--data-path", str(slice_csv), "--model-name", "m",
                     env={"MINIAUTOML_JOBS_BACKEND": "ray"})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.error_line]
    assert "miniautoml cluster up" in result.error_line
    assert job_cli(ws, "train", "list").json == []  # nothing queued
