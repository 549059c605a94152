"""Containerized bentos: `miniautoml bento containerize` builds a real OCI image with podman
(BentoML's containerize on the Debian base built offline), and that image, run by podman, answers
exactly as `bentoml serve TAG` does, as a non-root user, with its API keys from a mounted secret.

Needs podman, runc and debootstrap (.ci/setup installs them as root). Where they cannot run the
tests fail saying why; set MINIAUTOML_CONTAINERS_UNAVAILABLE=<reason> to skip them explicitly.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from miniautoml.adapters import podman as podman_adapter
from miniautoml.containers.base_image import DEFAULT_BASE
from serving_support import (
    BIN,
    TEXTS,
    Server,
    TrainedModels,
    clean_env,
    free_port,
    same_prediction,
    start_server,
    trained_models,
)

pytestmark = pytest.mark.slow

API_KEY = "container-test-key-0123456789abcdef"
SECRET = "/run/secrets/prediction-api-keys"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
STOP_GRACE = 30  # seconds `podman stop` waits after SIGTERM before it kills


@pytest.fixture(scope="module", autouse=True)
def containers_available() -> None:
    explicit = os.environ.get("MINIAUTOML_CONTAINERS_UNAVAILABLE")
    if explicit:
        pytest.skip(f"MINIAUTOML_CONTAINERS_UNAVAILABLE says: {explicit}")
    reason = podman_adapter.unavailable_reason()
    if reason:
        pytest.fail(f"containerized bentos cannot be tested here: {reason}", pytrace=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> TrainedModels:
    return trained_models(tmp_path_factory.getbasetemp() / "serving-models")


@pytest.fixture(scope="module")
def image(models: TrainedModels) -> dict:
    """The image of `intent@champion` (the Debian base is built on first use, then reused)."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "miniautoml"), "-w", str(models.workspace), "bento", "containerize", f"{models.name}@champion"],
        capture_output=True, text=True, env=clean_env(), timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = json.loads(proc.stdout)
    print(f"\ncontainerize: {time.monotonic() - started:.0f} s (base built: {built['base_built']}, "
          f"{built['base_seconds']} s), image {built['size_bytes'] / 1e6:.0f} MB")
    yield built
    podman(built, "rmi", "-f", built["image"])


def podman(built: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": built["containers_conf"]}
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("container-keys") / "api-keys"
    keys.write_text(f"# prediction clients\n{API_KEY}\n")
    keys.chmod(0o644)  # read by the container's non-root user
    return keys


@pytest.fixture(scope="module")
def container(image: dict, keys_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """`podman run` of the image on a free loopback port, the keys file mounted as a secret."""
    name = f"miniautoml-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    argv = [
        "podman", "run", "--name", name, "-p", f"127.0.0.1:{port}:3000",
        "-v", f"{keys_file}:{SECRET}:ro", "-e", f"MINIAUTOML_API_KEYS_FILE={SECRET}", image["image"],
    ]
    env = clean_env(CONTAINERS_CONF=image["containers_conf"])
    started = time.monotonic()
    try:
        srv = start_server(argv, env, tmp_path_factory.mktemp("container") / "container.log", port=port, ready_timeout=300)
        status, first = srv.post("/predict", {"model_id": "intent@champion", "document": TEXTS[0]}, headers=AUTH)
        print(f"\ncold start to first prediction: {time.monotonic() - started:.1f} s ({status})")
        srv.name = name  # type: ignore[attr-defined]
        yield srv
    finally:
        podman(image, "rm", "-f", "-t", "0", name)


@pytest.fixture(scope="module")
def bento_server(image: dict, keys_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """`bentoml serve TAG` of the same bento on the host, the same keys."""
    port = free_port()
    env = clean_env(
        BENTOML_HOME=image["bentoml_home"], MINIAUTOML_API_KEYS_FILE=str(keys_file),
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
    )
    argv = [str(BIN / "bentoml"), "serve", image["bento"], "--host", "127.0.0.1", "--port", str(port)]
    work = tmp_path_factory.mktemp("bento-serve-host")
    srv = start_server(argv, env, work / "server.log", cwd=work, port=port)
    yield srv
    srv.stop()


def test_the_image_is_built_on_the_offline_debian_base_with_cpu_torch_from_disk(image: dict, models: TrainedModels) -> None:
    assert image["backend"] == "podman"
    assert image["base_image"] == DEFAULT_BASE
    assert image["run_id"] == models.run_v1
    assert image["image"] == f"localhost/{image['bento']}"
    assert image["torch_wheel"].endswith(".whl") and "+cpu" in image["torch_wheel"]
    assert image["size_bytes"] > 0
    assert podman(image, "image", "exists", image["image"]).returncode == 0


def test_the_container_answers_like_bentoml_serve(container: Server, bento_server: Server, models: TrainedModels) -> None:
    for text in TEXTS:
        body = {"model_id": f"{models.name}@champion", "document": text, "top_k": 3}
        got_status, got = container.post("/predict", body, headers=AUTH)
        want_status, want = bento_server.post("/predict", body, headers=AUTH)
        assert (got_status, want_status) == (200, 200), (got, want)
        assert (got["model_id"], got["model_name"], got["model_version"]) == (models.run_v1, models.name, 1)
        assert (got["model_id"], got["model_name"], got["model_version"]) == (
            want["model_id"], want["model_name"], want["model_version"]
        )
        assert same_prediction(got, want), (got, want)


def test_the_container_needs_the_api_key(container: Server, models: TrainedModels) -> None:
    status, body = container.post("/predict", {"model_id": f"{models.name}@champion", "document": TEXTS[0]})
    assert status == 401, body
    assert container.get("/readyz")[0] == 200  # probes stay open


def test_the_container_runs_as_a_non_root_user(container: Server, image: dict) -> None:
    proc = podman(image, "exec", container.name, "id", "-u")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() != "0"


def test_the_image_has_no_compiler_and_no_git(image: dict) -> None:
    proc = podman(image, "run", "--rm", "--entrypoint", "sh", image["image"], "-c", "command -v gcc cc git || true")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_the_container_stops_cleanly_on_sigterm(container: Server, image: dict) -> None:
    """After the other container tests: it stops the module's container. `podman stop` sends
    SIGTERM, then SIGKILL after the grace; a clean stop exits 0 (or 143, terminated by SIGTERM),
    never 137 (killed)."""
    proc = podman(image, "stop", "-t", str(STOP_GRACE), container.name, timeout=STOP_GRACE + 60)
    assert proc.returncode == 0, proc.stderr
    code = podman(image, "inspect", container.name, "--format", "{{.State.ExitCode}}").stdout.strip()
    assert code in ("0", "143"), code
    assert container.proc.wait(timeout=60) in (0, 143)


@pytest.mark.parametrize(
    "args, named",
    [
        (["--image-tag", "Not A Tag"], "--image-tag"),
        (["--wheels", "/nonexistent-wheels"], "--wheels /nonexistent-wheels"),
        (["--base", "localhost/no-such-base:1"], "--base"),
    ],
)
def test_bad_options_fail_with_one_line_naming_them(models: TrainedModels, args: list[str], named: str) -> None:
    proc = subprocess.run(
        [str(BIN / "miniautoml"), "-w", str(models.workspace), "bento", "containerize", f"{models.name}@champion", *args],
        capture_output=True, text=True, env=clean_env(), timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
