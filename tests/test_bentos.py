"""Bentos: `miniautoml bento build` packs one registered model with the prediction service;
`bentoml serve TAG` answers with exactly that model, with no MLflow at run time."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from serving_support import (
    same_prediction,
    BIN,
    TEXTS,
    Server,
    TrainedModels,
    clean_env,
    free_port,
    start_server,
    trained_models,
)
from test_serving_auth import request as keyed_request

pytestmark = pytest.mark.slow

# A proxy that refuses every connection: a build that needed the network would fail.
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> TrainedModels:
    return trained_models(tmp_path_factory.getbasetemp() / "serving-models")


def bento_cli(models: TrainedModels, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "miniautoml"), "-w", str(models.workspace), "bento", *args],
        capture_output=True, text=True, env=clean_env(**NO_NETWORK), timeout=600,
    )


@pytest.fixture(scope="module")
def built(models: TrainedModels) -> dict:
    """A bento of `intent@champion` (version 1), built offline."""
    proc = bento_cli(models, "build", f"{models.name}@champion")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def bento_server(built: dict, models: TrainedModels, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """`bentoml serve TAG` with no workspace and a tracking URI nothing listens on."""
    port = free_port()
    env = clean_env(BENTOML_HOME=built["bentoml_home"], MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    argv = [str(BIN / "bentoml"), "serve", built["tag"], "--host", "127.0.0.1", "--port", str(port)]
    work = tmp_path_factory.mktemp("bento-serve")
    srv = start_server(argv, env, work / "server.log", cwd=work, port=port)
    yield srv
    srv.stop()


API_KEY = "bento-key-" + "0123456789abcdef"


@pytest.fixture(scope="module")
def keyed_bento_server(built: dict, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """`bentoml serve TAG` as the README says to run it with API keys: MINIAUTOML_API_KEYS_FILE."""
    work = tmp_path_factory.mktemp("bento-serve-keys")
    keys = work / "api-keys"
    keys.write_text(f"# prediction clients\n{API_KEY}\n")
    port = free_port()
    env = clean_env(BENTOML_HOME=built["bentoml_home"], MINIAUTOML_API_KEYS_FILE=str(keys))
    argv = [str(BIN / "bentoml"), "serve", built["tag"], "--host", "127.0.0.1", "--port", str(port)]
    srv = start_server(argv, env, work / "server.log", cwd=work, port=port)
    yield srv
    srv.stop()


def keyed_calls(models: TrainedModels) -> list[tuple[str, dict | None]]:
    return [("/predict", {"model_id": f"{models.name}@champion", "document": TEXTS[0]}), ("/metrics", None)]


def bento_dir(built: dict) -> Path:
    name, version = built["tag"].split(":")
    return Path(built["bentoml_home"]) / "bentos" / name / version


def test_build_prints_the_bento_and_the_model_it_serves(built: dict, models: TrainedModels) -> None:
    assert built["tag"].startswith(f"{models.name}:")
    assert (built["run_id"], built["registered_name"], built["registered_version"]) == (models.run_v1, models.name, 1)
    assert built["model_id"] == f"{models.name}@champion"
    assert built["containerize"].endswith(f"bentoml containerize {built['tag']}")


def test_the_bentoml_model_carries_the_lineage_labels(built: dict, models: TrainedModels) -> None:
    name, version = built["model_tag"].split(":")
    model_yaml = yaml.safe_load((Path(built["bentoml_home"]) / "models" / name / version / "model.yaml").read_text())
    assert model_yaml["module"] == "bentoml.mlflow"
    assert model_yaml["labels"] == {
        "model_id": f"{models.name}@champion",
        "run_id": models.run_v1,
        "registered_name": models.name,
        "registered_version": "1",
    }  # dataset_id / version_hash appear when the run trained on a dataset snapshot


def test_the_serve_hint_binds_the_loopback(built: dict) -> None:
    assert built["serve"].endswith(f"bentoml serve {built['tag']} --host 127.0.0.1")  # BentoML's default: 0.0.0.0


def test_the_bentoml_model_metadata_holds_no_credentials(built: dict, models: TrainedModels) -> None:
    from miniautoml.redact import has_credentials

    name, version = built["model_tag"].split(":")
    model_yaml = yaml.safe_load((Path(built["bentoml_home"]) / "models" / name / version / "model.yaml").read_text())
    metadata = model_yaml["metadata"]
    assert set(metadata) == {"mlflow_model_uri", "tracking_uri"}
    assert metadata["tracking_uri"] == models.tracking_uri and not has_credentials(metadata["tracking_uri"])


def test_the_bento_names_its_model_and_pins_a_cpu_torch_without_a_lock_file(built: dict) -> None:
    root = bento_dir(built)
    info = yaml.safe_load((root / "bento.yaml").read_text())
    assert info["args"] == {"model": built["model_tag"]}
    assert [m["tag"] for service in info["services"] for m in service["models"]] == [built["model_tag"]]
    requirements = (root / "env" / "python" / "requirements.txt").read_text().splitlines()
    torch = [line for line in requirements if line.startswith("torch==")]
    assert len(torch) == 1 and torch[0].endswith("+cpu")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert not any("nvidia" in line or "cuda" in line for line in requirements)
    assert not (root / "env" / "python" / "requirements.lock.txt").exists()
    assert (root / "src" / "service.py").is_file() and (root / "src" / "miniautoml" / "serving" / "__init__.py").is_file()


def test_the_bento_carries_every_module_its_service_imports(tmp_path: Path) -> None:
    """A bento's image has no miniautoml but its own copy: the service imported from a bento's
    src/ loads each of our modules from there (in this venv, one left out would quietly come from
    the checkout instead)."""
    import sys

    from miniautoml.bentos import copy_service

    src = tmp_path / "src"
    src.mkdir()
    copy_service(src)
    probe = (
        "import json, sys; import service; "
        "print(json.dumps(sorted(m.__file__ for n, m in list(sys.modules.items()) if n.split('.')[0] == 'miniautoml')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=src, capture_output=True, text=True, timeout=300,
        env=clean_env(PYTHONPATH=str(src)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert any(f.endswith("server/pool.py") for f in loaded)
    assert [f for f in loaded if not Path(f).is_relative_to(src)] == []
    assert not (src / "miniautoml" / "serving" / "client").exists()  # the client stays out


def test_the_served_bento_answers_like_the_registry_model(bento_server: Server, models: TrainedModels) -> None:
    expected = models.pyfunc_predictions(models.run_v1, TEXTS)
    for model_id in (f"{models.name}@champion", f"{models.name}/1", models.run_v1):
        for text, want in zip(TEXTS, expected):
            status, body = bento_server.post("/predict", {"model_id": model_id, "document": text})
            assert status == 200, body
            assert body["model_id"] == models.run_v1
            assert (body["model_name"], body["model_version"]) == (models.name, 1)  # by run id too
            assert same_prediction(body, want), (body, want)


def test_the_served_bento_refuses_other_models(bento_server: Server, models: TrainedModels) -> None:
    for model_id in (f"{models.name}/2", models.run_v2):
        status, body = bento_server.post("/predict", {"model_id": model_id, "document": TEXTS[0]})
        assert status == 404
        assert "serves only" in body["error"]


def test_the_served_bento_is_ready_without_a_tracking_store(bento_server: Server) -> None:
    assert bento_server.get("/readyz")[0] == 200


def test_building_an_unknown_model_fails_in_one_line(models: TrainedModels) -> None:
    proc = bento_cli(models, "build", f"{models.name}@nobody")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "nobody" in proc.stderr


def test_bento_list_shows_the_built_bento(built: dict, models: TrainedModels) -> None:
    proc = bento_cli(models, "list")
    assert proc.returncode == 0, proc.stderr
    bentos = {b["tag"]: b for b in json.loads(proc.stdout)}
    assert bentos[built["tag"]]["labels"]["run_id"] == models.run_v1


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_bento_served_with_api_keys_answers_401_without_the_key(
    keyed_bento_server: Server, models: TrainedModels, key: str | None
) -> None:
    for path, body in keyed_calls(models):
        status, _, text = keyed_request(keyed_bento_server, path, body, key)
        assert status == 401, (path, status, text)
        assert "\n" not in text.strip() and "Bearer" in json.loads(text)["error"]


def test_a_bento_served_with_api_keys_answers_200_with_the_key(keyed_bento_server: Server, models: TrainedModels) -> None:
    for path, body in keyed_calls(models):
        status, _, text = keyed_request(keyed_bento_server, path, body, API_KEY)
        assert status == 200, (path, status, text)
    status, _, text = keyed_request(keyed_bento_server, "/predict", keyed_calls(models)[0][1], API_KEY)
    assert json.loads(text)["model_id"] == models.run_v1


def test_a_bento_served_with_api_keys_keeps_its_probes_open(keyed_bento_server: Server) -> None:
    assert keyed_request(keyed_bento_server, "/livez")[0] == 200
    assert keyed_request(keyed_bento_server, "/readyz")[0] == 200
