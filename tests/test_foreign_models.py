"""Bring your own model: any registered MLflow pyfunc model is served, not only training_code's.

Through real processes: a workspace made by `miniautoml init`; the user's own script
(examples/byo-sklearn/train.py: TF-IDF + logistic regression, logged with `mlflow.sklearn`,
registered, alias set) run against the workspace's tracking store; a numeric-input model beside
it; then `miniautoml serve`, `miniautoml predict` and a bento of the foreign model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import wait_until
from serving_support import BIN, REPO, Server, clean_env, free_port, post, start_server

pytestmark = pytest.mark.slow

SCRIPT = REPO / "examples" / "byo-sklearn" / "train.py"
DATA = REPO / "data" / "clinc150" / "demo-part1.csv"
NAME = "byo-intent"
NUMERIC = "numeric"
DOCS = ["what is my bank balance", "how do you say thank you in french", "what's the weather like today"]

# In a child process: a numeric-input sklearn model (registered as NUMERIC), then what the user's
# model's own pyfunc answers for DOCS (the reference the served answers must equal).
NUMERIC_AND_REFERENCE = """
import json, sys
import mlflow, mlflow.pyfunc, mlflow.sklearn, numpy as np, pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
x = pd.DataFrame({"x0": [0.0, 1.0, 2.0, 3.0], "x1": [1.0, 0.0, 1.0, 0.0]})
y = np.array([0, 1, 0, 1])
model = LogisticRegression().fit(x, y)
mlflow.set_experiment("byo-numeric")
with mlflow.start_run() as run:
    mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x, model.predict(x)),
                             registered_model_name=sys.argv[1], pip_requirements=["scikit-learn"])
reference = mlflow.pyfunc.load_model(sys.argv[2]).predict(pd.DataFrame({"text": json.loads(sys.argv[3])}))
print("RESULT " + json.dumps({"numeric_run": run.info.run_id, "reference": [str(v) for v in reference]}))
"""


@dataclass(frozen=True)
class Foreign:
    workspace: Path
    tracking_uri: str
    run_v1: str
    run_v2: str
    numeric_run: str
    reference: list[str]  # the v1 pyfunc's own labels for DOCS

    def set_alias(self, version: int) -> None:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri).set_registered_model_alias(NAME, "champion", str(version))


def user_script(workspace: Path, tracking_uri: str, *args: str) -> str:
    """Run the user's script as a user would (its own process, cwd the workspace); its run id."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(DATA), "--limit", "1500", "--name", NAME, *args],
        cwd=workspace, capture_output=True, text=True, timeout=600, env=clean_env(MLFLOW_TRACKING_URI=tracking_uri),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("run ")][-1]
    return line.split()[1].rstrip(":")


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Foreign:
    workspace = tmp_path_factory.mktemp("byo") / "ws"
    workspace.mkdir()
    init = subprocess.run(
        [str(BIN / "miniautoml"), "-w", str(workspace), "init"],
        capture_output=True, text=True, timeout=120, env=clean_env(),
    )
    assert init.returncode == 0, init.stderr[-3000:]
    tracking_uri = f"sqlite:///{workspace / '.miniautoml' / 'mlflow.db'}"
    run_v1 = user_script(workspace, tracking_uri, "--alias", "champion")
    run_v2 = user_script(workspace, tracking_uri, "--alias", "", "--seed", "1")
    proc = subprocess.run(
        [sys.executable, "-c", NUMERIC_AND_REFERENCE, NUMERIC, f"runs:/{run_v1}/model", json.dumps(DOCS)],
        cwd=workspace, capture_output=True, text=True, timeout=600, env=clean_env(MLFLOW_TRACKING_URI=tracking_uri),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])
    assert len(result["reference"]) == len(DOCS), result  # one label per document
    return Foreign(workspace, tracking_uri, run_v1, run_v2, result["numeric_run"], result["reference"])


@pytest.fixture(scope="module")
def server(foreign: Foreign, tmp_path_factory: pytest.TempPathFactory) -> Server:
    port = free_port()
    argv = [str(BIN / "miniautoml"), "-w", str(foreign.workspace), "serve", "--port", str(port)]
    env = clean_env(MINIAUTOML_ALIAS_REFRESH_SECONDS="1")
    srv = start_server(argv, env, tmp_path_factory.mktemp("byo-serve") / "server.log", port=port)
    yield srv
    srv.stop()


def test_a_users_sklearn_model_is_served_by_alias_like_its_own_pyfunc(server: Server, foreign: Foreign) -> None:
    for doc, want in zip(DOCS, foreign.reference):
        status, body = server.post("/predict", {"model_id": f"{NAME}@champion", "document": doc})
        assert status == 200, body
        assert body == {"result": want, "model_id": foreign.run_v1, "model_name": NAME, "model_version": 1, "scores": {}}


def test_a_users_sklearn_model_is_served_by_run_id(server: Server, foreign: Foreign) -> None:
    status, body = server.post("/predict", {"model_id": foreign.run_v1, "document": DOCS[0], "top_k": 5})
    assert status == 200, body
    assert (body["result"], body["model_id"], body["model_name"], body["model_version"]) == (
        foreign.reference[0], foreign.run_v1, NAME, 1,
    )


@pytest.mark.parametrize("model_id", [f"{NAME}@champion", "run"], ids=["alias", "run id"])
def test_predict_batch_of_a_users_model_answers_every_document_in_order(
    server: Server, foreign: Foreign, model_id: str
) -> None:
    model_id = foreign.run_v1 if model_id == "run" else model_id
    status, body = server.post("/predict_batch", {"model_id": model_id, "documents": DOCS})
    assert status == 200, body
    assert body == {
        "model_id": foreign.run_v1,
        "model_name": NAME,
        "model_version": 1,
        "predictions": [{"result": want, "scores": {}} for want in foreign.reference],
    }


@pytest.mark.parametrize("route", ["/predict", "/predict_batch"])
def test_a_model_that_cannot_take_text_is_422_naming_its_signature(server: Server, foreign: Foreign, route: str) -> None:
    body = {"model_id": f"{NUMERIC}/1", **({"document": "hi"} if route == "/predict" else {"documents": ["hi", "yo"]})}
    status, answer = server.post(route, body)
    assert status == 422, answer
    assert set(answer) == {"error"} and "\n" not in answer["error"]
    assert foreign.numeric_run in answer["error"]
    assert "'x0': double (required)" in answer["error"] and "'x1': double (required)" in answer["error"]


def test_the_openapi_document_declares_422(server: Server) -> None:
    status, text = server.get("/docs.json")
    assert status == 200
    doc = json.loads(text)
    for route in ("/predict", "/predict_batch"):
        assert "422" in doc["paths"][route]["post"]["responses"]


def test_cli_predict_by_alias_prints_the_users_models_answer(server: Server, foreign: Foreign) -> None:
    proc = subprocess.run(
        [str(BIN / "miniautoml"), "predict", f"{NAME}@champion", DOCS[0], "--url", server.url],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert (answer["result"], answer["model_id"], answer["model_version"]) == (foreign.reference[0], foreign.run_v1, 1)


def test_an_alias_moved_to_another_version_of_a_users_model_is_followed(server: Server, foreign: Foreign) -> None:
    model_id = f"{NAME}@champion"
    assert server.post("/predict", {"model_id": model_id, "document": DOCS[0]})[1]["model_id"] == foreign.run_v1
    try:
        foreign.set_alias(2)

        def moved() -> bool:
            status, body = server.post("/predict", {"model_id": model_id, "document": DOCS[0]})
            assert status == 200, body
            return (body["model_id"], body["model_version"]) == (foreign.run_v2, 2)

        wait_until(moved, 30, "the alias to follow version 2", interval=0.2)
    finally:
        foreign.set_alias(1)
    wait_until(
        lambda: server.post("/predict", {"model_id": model_id, "document": DOCS[0]})[1]["model_id"] == foreign.run_v1,
        30, "the alias to return to version 1", interval=0.2,
    )


# --------------------------------------------------------------------------------------------
# A bento of the user's model
# --------------------------------------------------------------------------------------------

NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}


def test_a_bento_of_a_users_model_serves_it_without_mlflow(foreign: Foreign, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "miniautoml"), "-w", str(foreign.workspace), "bento", "build", f"{NAME}@champion"],
        capture_output=True, text=True, env=clean_env(**NO_NETWORK), timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = json.loads(proc.stdout)
    assert (built["run_id"], built["registered_name"], built["registered_version"]) == (foreign.run_v1, NAME, 1)
    name, version = built["tag"].split(":")
    requirements = (Path(built["bentoml_home"]) / "bentos" / name / version / "env" / "python" / "requirements.txt")
    assert any(line.startswith("scikit-learn") for line in requirements.read_text().splitlines())
    port = free_port()
    env = clean_env(BENTOML_HOME=built["bentoml_home"], MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    argv = [str(BIN / "bentoml"), "serve", built["tag"], "--host", "127.0.0.1", "--port", str(port)]
    srv = start_server(argv, env, tmp_path / "bento.log", cwd=tmp_path, port=port)
    try:
        status, body = srv.post("/predict", {"model_id": f"{NAME}@champion", "document": DOCS[0]})
        assert status == 200, body
        assert (body["result"], body["model_id"], body["model_version"], body["scores"]) == (
            foreign.reference[0], foreign.run_v1, 1, {},
        )
        status, body = post(srv.url + "/predict_batch", {"model_id": foreign.run_v1, "documents": DOCS})
        assert status == 200, body
        assert [p["result"] for p in body["predictions"]] == foreign.reference
    finally:
        srv.stop()
