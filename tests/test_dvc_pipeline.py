"""`dvc repro` runs dvc.yaml: prepare the snapshot, train it through the job service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, REPO, run_cli


def dvc(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("MINIAUTOML_WORKSPACE", None)  # the pipeline's workspace is the checkout it runs in
    return subprocess.run([str(BIN / "dvc"), *args], cwd=ws, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def pipeline_ws(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("pipeline") / "ws"
    created = run_cli(ws, "dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(REPO / "data/demo/intents-part1.csv"))
    assert created.returncode == 0, created.stderr
    shutil.copy(REPO / "dvc.yaml", ws / "dvc.yaml")
    shutil.copytree(REPO / "params", ws / "params")
    (ws / "params/config.yaml").write_text((ws / "params/config.yaml").read_text().replace("epochs: 10", "epochs: 3"))
    repro = dvc(ws, "repro")
    assert repro.returncode == 0, repro.stdout[-2000:] + repro.stderr[-2000:]
    return ws


def test_repro_trains_and_registers_the_prepared_snapshot(pipeline_ws):
    snapshot = json.loads((pipeline_ws / "data/pipeline/snapshot.json").read_text())
    job = json.loads((pipeline_ws / "data/pipeline/job.json").read_text())
    assert snapshot["version_hash"] == "hashAg=="
    assert job["status"] == "succeed"
    assert job["metadata"]["version_hash"] == "hashAg==" and job["metadata"]["model_version"] == "1"
    assert job["metadata"]["params"]["epochs"] == "3"  # taken from params/config.yaml


def test_dvc_shows_the_runs_metrics_and_plots(pipeline_ws):
    metrics = dvc(pipeline_ws, "metrics", "show", "--json")
    assert metrics.returncode == 0, metrics.stderr
    values = json.loads(metrics.stdout)
    [entry] = [v for v in values.values()]
    assert 0.0 < entry["data"]["data/pipeline/metrics.json"]["data"]["test_accuracy"] <= 1.0
    plots = dvc(pipeline_ws, "plots", "show", "--json")
    assert plots.returncode == 0 and "val_accuracy" in plots.stdout


def test_repro_again_without_changes_does_not_retrain(pipeline_ws):
    again = dvc(pipeline_ws, "repro")
    assert again.returncode == 0, again.stderr
    assert "Stage 'train' didn't change, skipping" in again.stdout + again.stderr


def test_snapshot_option_rejects_a_file_that_is_not_a_prepare_record(workspace, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    out = run_cli(workspace, "train", "submit", "--snapshot", str(bad), "--model-name", "m")
    assert out.returncode == 2 and "not a `dataset prepare` JSON" in out.error_line
