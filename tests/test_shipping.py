"""What a Ray job's node gets (jobs/shipping.py): the package staged on the submitting machine and
the entrypoint that runs it, in a real shell, with a stand-in for the node's Python that reports
what the job would see. No cluster: tests/test_ray_cluster.py runs packages on two real nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from conftest import CLINC, csv_slice

from miniautoml.adapters import git
from miniautoml.config import LOCAL_REMOTE_ENV, PROJECT_ROOT, StorageSettings
from miniautoml.jobs import backends, shipping, store

# Stands in for the node's Python: prints what `python -m mlflow run ...` would run with.
FAKE_PYTHON = """#!/bin/sh
ws="$MINIAUTOML_WORKSPACE"
printf '%s\\n' "$(git -C "$ws" rev-parse HEAD 2>/dev/null || echo no-git)" "$ws" "$PYTHONPATH" "$PWD" "$*" \
  "$MINIAUTOML_PYTHON" "$MINIAUTOML_DVC_CACHE_DIR" "$(ls "$ws" | tr '\\n' ' ')"
"""


def _fake_python(tmp_path: Path) -> Path:
    path = tmp_path / "node-env" / "bin" / "python"
    path.parent.mkdir(parents=True)
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    return path


def _run(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def _workspace_repo(tmp_path: Path) -> tuple[Path, str]:
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    (ws / "data" / "meta.json").write_text("{}")
    git.init(ws)
    git.commit(ws, ["data"], "a dataset commit")
    return ws, git.rev(ws)


def _package_of(tmp_path: Path, rev: str | None, ws: Path | None = None) -> Path:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    if ws is not None:
        assert git.bundle(ws, pkg / shipping.BUNDLE) == rev
    return pkg


def test_a_dataset_job_runs_on_a_checkout_of_the_bundled_revision(tmp_path: Path):
    ws, rev = _workspace_repo(tmp_path)
    pkg = _package_of(tmp_path, rev, ws)
    node_python = _fake_python(tmp_path)
    command = shipping.entrypoint(shipping.Shipment(pkg, rev, None), ["run", ".", "-e", "train"])
    proc = _run(command, pkg, **{shipping.NODE_PYTHON_ENV: str(node_python), "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    head, workspace, pythonpath, cwd, args, python, _, files = proc.stdout.splitlines()
    assert head == rev and workspace != str(ws) and "data" in files.split()
    assert pythonpath.split(os.pathsep)[:2] == [f"{pkg}/platform", str(pkg)]  # the shipped code first
    assert cwd == str(pkg) and python == str(node_python)
    assert args.startswith("-m mlflow run . -e train --storage-dir ")


def test_jobs_on_a_node_share_its_dvc_cache(tmp_path: Path):
    pkg = _package_of(tmp_path, None)
    command = shipping.entrypoint(shipping.Shipment(pkg, None, None), ["run", "."])
    node = {shipping.NODE_PYTHON_ENV: str(_fake_python(tmp_path)), "TMPDIR": str(tmp_path)}
    default = _run(command, pkg, **node, HOME=str(tmp_path / "home"), XDG_CACHE_HOME="").stdout.splitlines()[6]
    assert default == f"{tmp_path}/home/.cache/miniautoml/dvc-cache"
    chosen = _run(command, pkg, **node, **{shipping.NODE_CACHE_ENV: str(tmp_path / "c")}).stdout.splitlines()[6]
    assert chosen == str(tmp_path / "c")


def test_the_job_directory_is_removed_when_the_job_ends(tmp_path: Path):
    ws, rev = _workspace_repo(tmp_path)
    pkg = _package_of(tmp_path, rev, ws)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    command = shipping.entrypoint(shipping.Shipment(pkg, rev, None), ["run", "."])
    proc = _run(command, pkg, **{shipping.NODE_PYTHON_ENV: str(_fake_python(tmp_path)), "TMPDIR": str(scratch)})
    assert proc.returncode == 0 and proc.stdout.splitlines()[1].startswith(str(scratch))
    assert list(scratch.iterdir()) == []
    assert "miniautoml-job-" in proc.stdout.splitlines()[1]


def test_a_job_removes_what_a_killed_job_left_and_keeps_what_a_live_one_uses(tmp_path: Path):
    pkg = _package_of(tmp_path, None)
    scratch = tmp_path / "scratch"
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    left = scratch / f"miniautoml-job-{dead}-aaaaaa"
    alive = scratch / f"miniautoml-job-{os.getpid()}-bbbbbb"
    for directory in (left / "workspace", alive / "workspace"):
        directory.mkdir(parents=True)
    command = shipping.entrypoint(shipping.Shipment(pkg, None, None), ["run", "."])
    proc = _run(command, pkg, **{shipping.NODE_PYTHON_ENV: str(_fake_python(tmp_path)), "TMPDIR": str(scratch)})
    assert proc.returncode == 0, proc.stderr
    assert not left.exists() and alive.is_dir()


def test_a_csv_job_gets_an_empty_workspace_of_its_own(tmp_path: Path):
    pkg = _package_of(tmp_path, None)
    command = shipping.entrypoint(shipping.Shipment(pkg, None, "inputs/0-a.csv"), ["run", "."])
    proc = _run(command, pkg, **{shipping.NODE_PYTHON_ENV: str(_fake_python(tmp_path)), "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    head, workspace, *_, files = proc.stdout.splitlines()
    assert head == "no-git" and workspace.startswith(str(tmp_path)) and files == ""


def test_a_node_without_the_python_environment_says_so_in_one_line(tmp_path: Path):
    pkg = _package_of(tmp_path, None)
    missing = tmp_path / "no-env" / "python"
    command = shipping.entrypoint(shipping.Shipment(pkg, None, None), ["run", "."])
    proc = _run(command, pkg, **{shipping.NODE_PYTHON_ENV: str(missing)})
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(shipping.MISSING_ON_NODE) and f"has no Python environment at {missing}" in proc.stderr
    assert shipping.NODE_PYTHON_ENV in proc.stderr


def test_a_bundle_without_the_revision_is_one_line(tmp_path: Path):
    ws, rev = _workspace_repo(tmp_path)
    pkg = _package_of(tmp_path, rev, ws)
    other = "0" * 40
    command = shipping.entrypoint(shipping.Shipment(pkg, other, None), ["run", "."])
    proc = _run(command, pkg, **{shipping.NODE_PYTHON_ENV: str(_fake_python(tmp_path)), "TMPDIR": str(tmp_path)})
    assert proc.returncode == 3 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and f"could not check out workspace revision {other}" in proc.stderr


def test_the_default_node_python_is_the_submitters_interpreter_path(tmp_path: Path):
    command = shipping.entrypoint(shipping.Shipment(tmp_path, None, None), ["run", "."])
    assert f"${{{shipping.NODE_PYTHON_ENV}:-{sys.executable}}}" in command


def _csv_run(data_path: str) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(run_id="r" * 32), data=SimpleNamespace(tags={store.DATA_PATH: data_path}))


def _settings(tmp_path: Path, storage: StorageSettings) -> SimpleNamespace:
    return SimpleNamespace(workspace=tmp_path / "ws", storage=storage, tracking_uri="http://mlflow.example:5000",
                           local_remote=tmp_path / "ws" / ".miniautoml" / "dvc-remote")


def test_a_csv_job_package_holds_the_code_and_its_files_and_no_local_path(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = csv_slice(CLINC / "demo-part1.csv", tmp_path / "a" / "train.csv", 10)
    second = csv_slice(CLINC / "demo-part1.csv", tmp_path / "b" / "train.csv", 5)
    storage = StorageSettings(endpoint="http://s3.example:9000", bucket="bkt", access_key="AK", secret_key="SK", region="us-east-1")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    shipment = shipping.stage(_settings(tmp_path, storage), _csv_run(f"{first}{os.pathsep}{second}"), pkg)
    assert shipment.workspace_rev is None and shipment.data_path == os.pathsep.join(["inputs/0-train.csv", "inputs/1-train.csv"])
    assert (pkg / "inputs" / "0-train.csv").read_bytes() == first.read_bytes()
    assert (pkg / "inputs" / "1-train.csv").read_bytes() == second.read_bytes()
    for rel in ("MLproject", "training_code/train.py", "params/config.yaml", "platform/miniautoml/jobs/shipping.py"):
        assert (pkg / rel).read_bytes() == (PROJECT_ROOT / rel).read_bytes()
    assert not list(pkg.rglob("__pycache__"))
    env = shipment.env
    assert env["MINIAUTOML_S3_ENDPOINT"] == "http://s3.example:9000" and env["MINIAUTOML_S3_BUCKET"] == "bkt"
    assert env["AWS_ACCESS_KEY_ID"] == "AK" and env["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    assert "mlflow.source.git.commit" in json.loads(env["MINIAUTOML_CODE_TAGS"])
    assert not any(str(tmp_path / "ws") in value for value in env.values())  # nothing names the submitter's workspace


def test_the_embedded_remote_is_named_only_for_a_dataset_job(tmp_path: Path):
    storage = StorageSettings(endpoint=None, bucket="miniautoml", access_key=None, secret_key=None, region="us-east-1")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    data = csv_slice(CLINC / "demo-part1.csv", tmp_path / "train.csv", 10)
    assert LOCAL_REMOTE_ENV not in shipping.stage(_settings(tmp_path, storage), _csv_run(str(data)), pkg).env


# --- which clusters a dataset job's DVC remote cannot serve -------------------------------------
LOCAL = {"127.0.0.1", "localhost", "10.0.0.5"}


def test_the_embedded_remote_is_refused_when_a_node_is_elsewhere(tmp_path: Path):
    problem = backends.local_remote_problem(tmp_path / "remote", "http://127.0.0.1:8265", ["10.0.0.9"], LOCAL)
    assert problem and "10.0.0.9" in problem and str(tmp_path / "remote") in problem and "S3" in problem
    assert "\n" not in problem


def test_the_embedded_remote_is_fine_on_a_cluster_of_this_machine_only(tmp_path: Path):
    assert backends.local_remote_problem(tmp_path / "remote", "http://127.0.0.1:8265", ["10.0.0.5"], LOCAL) is None


def test_an_s3_remote_is_fine_anywhere():
    assert backends.local_remote_problem(None, "http://ray-head.example:8265", ["10.0.0.9"], LOCAL) is None
