"""The same job service against a real `mlflow server` (tracking + registry over HTTP)."""

from __future__ import annotations


import pytest
from conftest import CLINC, csv_slice, job_cli, stop_job_processes
from mlflow_server_support import running_mlflow_server


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """`mlflow server` on 127.0.0.1 with its own SQLite store and artifact directory."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(root, f"sqlite:///{root / 'server.db'}") as url:
        yield url


@pytest.fixture(scope="module")
def server_job(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory):
    """One small job submitted and awaited with MLFLOW_TRACKING_URI pointing at the server."""
    root = tmp_path_factory.mktemp("server-job")
    ws = root / "ws"
    ws.mkdir()
    data = csv_slice(CLINC / "demo-part1.csv", root / "slice.csv", 300)
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    try:
        result = job_cli(ws, "train", "submit", "--data-path", str(data), "--model-name", "intent-on-server",
                         "-P", "epochs=1", "--wait", env=env)
    finally:
        stop_job_processes(ws)
    assert result.returncode == 0, result.stderr[-3000:]
    return ws, env, result.json


def test_job_succeeds_against_the_server_without_a_local_store(server_job):
    ws, _, status = server_job
    assert status["status"] == "succeed"
    assert not (ws / ".miniautoml" / "mlflow.db").exists()


def test_server_registry_holds_the_new_version(mlflow_server: str, server_job):
    from mlflow import MlflowClient

    _, _, status = server_job
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    versions = client.search_model_versions("name = 'intent-on-server'")
    assert [(v.version, v.run_id, v.tags.get("run_id")) for v in versions] == [("1", status["job_id"], status["job_id"])]


def test_models_show_reads_the_server_registry(server_job):
    ws, env, status = server_job
    model = job_cli(ws, "models", "show", "intent-on-server", env=env).json
    assert model["versions"][0]["run_id"] == status["job_id"]


def test_runs_show_reads_the_server_metadata(server_job):
    ws, env, status = server_job
    info = job_cli(ws, "runs", "show", status["job_id"], env=env).json["run_info"]
    assert info["success"] is True and info["run_name"] == "training job 1"
    assert list(info["epochs"]) == ["1"]
