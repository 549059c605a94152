"""`mlflow run` as a user types it in a workspace: natural -P keys, typos, where the run lands.

Each test runs the real `mlflow run` of this repository's MLproject from a job workspace with no
MLFLOW_* variables set, so MLflow's own defaults apply (a new ./mlflow.db, experiment Default),
and checks what the user sees: the output's last lines, the workspace's runs, the directory.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, job_cli, job_settings, new_job_workspace
from mlflow import MlflowClient
from test_training import PY, clinc_slice

from miniautoml.suggest import closest, did_you_mean


def bare_mlflow_run(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mlflow run <repo> -e train ARGS` from `ws`, as a shell with the venv on PATH runs it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MLFLOW_") and k not in ("PYTHONPATH", "MINIAUTOML_WORKSPACE")}
    env["PATH"] = f"{Path(PY).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [str(Path(PY).parent / "mlflow"), "run", str(REPO), "-e", "train", "--env-manager", "local", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ws, env=env, timeout=600, stdin=subprocess.DEVNULL)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_the_closest_key_is_suggested_and_none_when_nothing_is_close():
    keys = ["epochs", "lr", "seed", "batch_size", "algorithm"]
    assert closest("epoch", keys) == "epochs" and closest("batchsize", keys) == "batch_size"
    assert closest("zzz", keys) is None and did_you_mean("zzz", keys) == ""
    assert did_you_mean("seeds", keys) == "did you mean seed? "


@pytest.mark.slow
def test_mlflow_run_takes_training_keys_as_params_and_trains_in_the_workspace_store(tmp_path, mlflow_template):
    """`mlflow run . -e train -P epochs=1`: no ./mlflow.db, no detour: MLflow creates its run in the
    workspace's store and `miniautoml` experiment, and the last line names that run."""
    ws = new_job_workspace(tmp_path, mlflow_template)
    slice_csv = clinc_slice(tmp_path / "slice.csv", rows=600)
    proc = bare_mlflow_run(ws, "-P", f"data_path={slice_csv}", "-P", "epochs=1", "-P", "batch_size=16")
    assert proc.returncode == 0, proc.stderr[-3000:]

    listed = job_cli(ws, "runs", "list")
    assert listed.returncode == 0, listed.stderr
    [summary] = listed.json
    run_id = summary["run_id"]
    assert summary["status"] == "FINISHED" and summary["message"].startswith("test accuracy ")
    assert f"Run (ID '{run_id}') succeeded" in last_line(proc.stderr)
    assert last_line(proc.stdout).startswith(f"run {run_id}: test accuracy")
    settings = job_settings(ws)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "miniautoml"
    assert run.info.artifact_uri.startswith(settings.artifact_root)
    assert (run.data.params["epochs"], run.data.params["batch_size"]) == ("1", "16")
    assert run.data.params["model.embed_dim"] and run.data.tags["data_path"] == slice_csv.resolve().as_uri()
    assert "already logged" not in proc.stderr  # params left unset are no conflict
    job = json.loads(Path(client.download_artifacts(run_id, "job.json", str(tmp_path))).read_text())
    assert job["launched_by"] == "mlflow run" and job["moved_from"] is None
    assert sorted(p.name for p in ws.iterdir()) == [".miniautoml"]  # no mlflow.db, no mlruns


@pytest.mark.slow
def test_mlflow_run_with_a_mistyped_param_fails_in_one_line_naming_the_closest_key(tmp_path, mlflow_template):
    ws = new_job_workspace(tmp_path, mlflow_template)
    proc = bare_mlflow_run(ws, "-P", "data_path=x.csv", "-P", "epoch=3")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[0]] and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert errors[0].startswith("error: unknown MLproject parameter -P epoch=3: did you mean epochs? valid keys: ")
    assert all(key in errors[0] for key in ("epochs", "lr", "seed", "batch_size", "algorithm", "overrides"))
    [failed] = job_cli(ws, "runs", "list").json  # the run MLflow made, in the workspace, says why
    assert failed["status"] == "FAILED" and failed["message"] == errors[0]
    assert f"Run (ID '{failed['run_id']}') failed" in last_line(proc.stderr)
    assert sorted(p.name for p in ws.iterdir()) == [".miniautoml"]


@pytest.mark.slow
def test_mlflow_run_into_a_named_experiment_of_the_default_store_is_moved_to_the_workspace(tmp_path, mlflow_template):
    """With --experiment-name and no MLFLOW_TRACKING_URI MLflow opens its ./mlflow.db before asking
    anyone: the trainer trains a run of that name in the workspace's store and marks the stray run."""
    ws = new_job_workspace(tmp_path, mlflow_template)
    slice_csv = clinc_slice(tmp_path / "slice.csv", rows=600)
    proc = bare_mlflow_run(ws, "--experiment-name", "mine", "-P", f"data_path={slice_csv}", "-P", "epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    settings = job_settings(ws)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith(settings.artifact_root)
    assert f"training it as run {run.info.run_id}" in proc.stderr  # says where the run went
    job = json.loads(Path(client.download_artifacts(run.info.run_id, "job.json", str(tmp_path))).read_text())
    stray_store = f"sqlite:///{ws / 'mlflow.db'}"
    assert job["moved_from"]["tracking_uri"] == stray_store
    stray = MlflowClient(tracking_uri=stray_store).get_run(job["moved_from"]["run_id"])
    assert stray.data.tags["miniautoml.moved_to"] == run.info.run_id
