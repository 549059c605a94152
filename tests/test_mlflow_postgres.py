"""The MLflow tracking server on a real PostgreSQL (started by `postgres_server`), and a job against it."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from conftest import BIN, CLINC, csv_slice, job_cli, job_env, stop_job_processes
from mlflow_server_support import running_mlflow_server
from postgres_support import PostgresServer

MODEL = "intent-on-postgres"


@pytest.fixture(scope="module")
def pg_mlflow_server(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory):
    """`mlflow server --workers 1` on 127.0.0.1 with its backend store in PostgreSQL's `mlflow` database."""
    root = tmp_path_factory.mktemp("mlflow-postgres")
    with running_mlflow_server(root, postgres_server.uri()) as url:
        yield url


@pytest.fixture(scope="module")
def pg_job(pg_mlflow_server: str, tmp_path_factory: pytest.TempPathFactory):
    """One small job (300 rows, 1 epoch) submitted and awaited against the PostgreSQL-backed server."""
    root = tmp_path_factory.mktemp("postgres-job")
    ws = root / "ws"
    ws.mkdir()
    data = csv_slice(CLINC / "demo-part1.csv", root / "slice.csv", 300)
    try:
        result = job_cli(ws, "train", "submit", "--data-path", str(data), "--model-name", MODEL,
                         "-P", "epochs=1", "--wait", env={"MLFLOW_TRACKING_URI": pg_mlflow_server})
    finally:
        stop_job_processes(ws)
    assert result.returncode == 0, result.stderr[-3000:]
    return ws, result.json


def test_server_on_postgres_answers_health(pg_mlflow_server: str, postgres_server: PostgresServer):
    with urllib.request.urlopen(f"{pg_mlflow_server}/health", timeout=10) as resp:
        assert resp.status == 200
    # The server migrated its schema into PostgreSQL, not into some SQLite file.
    tables = {row[0] for row in postgres_server.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "experiments", "registered_models", "model_versions", "alembic_version"} <= tables


def test_job_against_postgres_server_succeeds_with_a_registered_version(pg_mlflow_server: str, pg_job):
    from mlflow import MlflowClient

    ws, status = pg_job
    assert status["status"] == "succeed", json.dumps(status)
    assert not (ws / ".miniautoml" / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=pg_mlflow_server, registry_uri=pg_mlflow_server)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert [(v.version, v.run_id) for v in versions] == [("1", status["job_id"])]


def test_run_and_version_are_rows_in_postgres(postgres_server: PostgresServer, pg_job):
    _, status = pg_job
    run_id = status["job_id"]
    assert postgres_server.psql(f"SELECT run_uuid, status FROM runs WHERE run_uuid = '{run_id}'") == [[run_id, "FINISHED"]]
    assert postgres_server.psql(
        f"SELECT name, version, run_id FROM model_versions WHERE name = '{MODEL}'") == [[MODEL, "1", run_id]]
    epochs = postgres_server.psql(f"SELECT count(*) FROM metrics WHERE run_uuid = '{run_id}'")
    assert int(epochs[0][0]) > 0


def test_eight_jobs_and_a_sweep_writing_at_once_lose_no_run(pg_mlflow_server: str, postgres_server: PostgresServer,
                                                            tmp_path_factory: pytest.TempPathFactory):
    """8 jobs and a 4-trial sweep (parallel 2) against one PostgreSQL-backed server at the same time:
    every job succeeds with its own registered version, every trial is recorded, no run is left open."""
    root = tmp_path_factory.mktemp("postgres-concurrent")
    ws = root / "ws"
    ws.mkdir()
    data = csv_slice(CLINC / "demo-part1.csv", root / "slice.csv", 300)
    env = {"MLFLOW_TRACKING_URI": pg_mlflow_server, "MINIAUTOML_MAX_RUNNERS": "3"}
    sweep = None
    try:
        jobs = []
        for _ in range(8):
            submitted = job_cli(ws, "train", "submit", "--data-path", str(data), "--model-name", "concurrent",
                                "-P", "epochs=1", env=env)
            assert submitted.returncode == 0, submitted.stderr[-2000:]
            jobs.append(submitted.json["job_id"])
        sweep = subprocess.Popen(
            [str(BIN / "miniautoml"), "-w", str(ws), "train", "sweep", "--data-path", str(data),
             "--model-name", "swept", "--trials", "4", "--parallel", "2", "--seed", "1",
             "-P", "epochs=1", "-P", "lr=tag(log, interval(0.01, 0.5))"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
            env=job_env(**env),
        )
        ended = [job_cli(ws, "train", "wait", job_id, "--timeout", "900", env=env, timeout=960) for job_id in jobs]
        out, err = sweep.communicate(timeout=900)
    finally:
        if sweep is not None and sweep.poll() is None:
            sweep.kill()
        stop_job_processes(ws)
    assert [e.json["status"] for e in ended] == ["succeed"] * 8, [e.stderr[-500:] for e in ended]
    assert sweep.returncode == 0, err[-3000:]
    swept = json.loads(out)
    assert [t["status"] for t in swept["trials"]] == ["succeed"] * 4
    # Each job registered its own version; no run of the workspace is left open.
    versions = postgres_server.psql("SELECT run_id FROM model_versions WHERE name = 'concurrent'")
    assert sorted(row[0] for row in versions) == sorted(jobs)
    trial_ids = {t["run_id"] for t in swept["trials"]}
    nested = postgres_server.psql(
        f"SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId' AND value = '{swept['sweep_id']}'")
    assert {row[0] for row in nested} == trial_ids
    ids = ", ".join(f"'{i}'" for i in [*jobs, *trial_ids, swept["sweep_id"]])
    statuses = postgres_server.psql(f"SELECT status, count(*) FROM runs WHERE run_uuid IN ({ids}) GROUP BY status")
    assert statuses == [["FINISHED", "13"]]
