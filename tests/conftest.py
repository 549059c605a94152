"""Shared fixtures: temporary workspaces, the CLI as a real process, a real S3 server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from miniautoml.processes import free_port, process_tree, stop_tree
from postgres_support import postgres_server  # noqa: F401  (the session fixture of the tests on PostgreSQL)

import pytest

REPO = Path(__file__).resolve().parents[1]
CLINC = REPO / "data" / "clinc150"
BIN = Path(sys.executable).parent


T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """The first truthy value `condition()` returns, polled every `interval` seconds; past
    `timeout` seconds an AssertionError naming `what` and the last value. The tests' one poll loop:
    a condition that sees the awaited thing can never come (a process that died) raises itself."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {value!r:.500})")
        time.sleep(interval)


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers (any HTTP status), or fail with what the process said."""

    def answers() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=2).close()
        except urllib.error.HTTPError:
            pass  # any status: the server answers
        except OSError:
            return False
        return True

    wait_until(answers, timeout, f"{url} to answer", interval=0.1)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)

    @property
    def error_line(self) -> str:
        """The last stderr line: where the CLI puts its one-line error."""
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else ""


def run_cli(workspace: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> CliResult:
    proc = subprocess.run(
        [str(BIN / "miniautoml"), "-w", str(workspace), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def cli(workspace: Path):
    """`cli("dataset", "list")` runs the real `miniautoml` process in the test's workspace."""

    def call(*args: str, env: dict[str, str] | None = None) -> CliResult:
        return run_cli(workspace, *args, env=env)

    return call


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen
    port: int

    def env(self, bucket: str | None = None) -> dict[str, str]:
        return {
            "MINIAUTOML_S3_ENDPOINT": self.endpoint,
            "MINIAUTOML_S3_BUCKET": bucket or f"b-{uuid.uuid4().hex[:12]}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def start_s3_server(workdir: Path, port: int | None = None) -> S3Server:
    """A real S3-protocol server on 127.0.0.1: `minio` when installed, else moto's server."""
    port = port or free_port()
    minio = shutil.which("minio")
    if minio:
        cmd = [minio, "server", str(workdir / "minio-data"), "--address", f"127.0.0.1:{port}", "--quiet"]
        env = {**os.environ, "MINIO_ROOT_USER": "testing", "MINIO_ROOT_PASSWORD": "testing-secret"}
    else:
        cmd = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        env = dict(os.environ)
    log = open(workdir / f"s3-{port}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = S3Server(endpoint=f"http://127.0.0.1:{port}", proc=proc, port=port)
    wait_http(server.endpoint + ("/minio/health/ready" if minio else "/"), proc=proc)
    return server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture
def clinc_part1() -> Path:
    path = CLINC / "demo-part1.csv"
    assert path.is_file(), f"test data missing: {path}"
    return path


@pytest.fixture
def clinc_part2() -> Path:
    path = CLINC / "demo-part2.csv"
    assert path.is_file(), f"test data missing: {path}"
    return path


# --- training jobs: tests/test_jobs.py, test_runs.py, test_registry.py, test_mlflow_server.py ---
# Variables of the caller that would point jobs at another store, runner limit or workspace.
JOB_ENV_DROP = (
    "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
    "MINIAUTOML_MAX_RUNNERS", "MINIAUTOML_WORKSPACE",
)


def job_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in JOB_ENV_DROP}
    env.update(extra)
    return env


def job_cli(workspace: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """The real `miniautoml` for job tests: caller's MLflow/runner variables dropped, `env` added."""
    proc = subprocess.run(
        [str(BIN / "miniautoml"), "-w", str(workspace), *args],
        capture_output=True, text=True, env=job_env(**(env or {})), timeout=timeout, stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def job_settings(workspace: Path, tracking_uri: str | None = None):
    """The workspace's Settings as a `miniautoml -w` child with `job_env` sees them."""
    from miniautoml.config import load_settings

    saved = {k: os.environ.pop(k) for k in JOB_ENV_DROP if k in os.environ}
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    try:
        return load_settings(workspace)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.update(saved)


def csv_slice(src: Path, dest: Path, rows: int) -> Path:
    with open(src, encoding="utf-8") as fh:
        dest.write_text("".join(line for _, line in zip(range(rows), fh)), encoding="utf-8")
    return dest


def processes_of(workspace: Path) -> list[int]:
    """Pids of live processes started for `workspace` (runners, `mlflow run`, trainers)."""
    pids, marker = [], f"MINIAUTOML_WORKSPACE={workspace}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def stop_job_processes(workspace: Path) -> None:
    """Teardown: stop the workspace's runners (their jobs end KILLED), then kill what is left."""
    from miniautoml.jobs import stop_runners

    try:
        stop_runners(job_settings(workspace), timeout=20)
    finally:
        stop_tree([proc for pid in processes_of(workspace) for proc in process_tree(pid)], grace=0)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow SQLite DB: copying it spares each job workspace ~2 s of schema
    migrations on its first MLflow call (what a workspace's first command pays once)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def new_job_workspace(parent: Path, template: Path | None) -> Path:
    ws = parent / "ws"
    (ws / ".miniautoml").mkdir(parents=True)
    if template is not None:
        shutil.copyfile(template, ws / ".miniautoml" / "mlflow.db")
    return ws


@dataclass
class TrainedJob:
    workspace: Path
    job_id: str
    result: CliResult  # of `train submit --wait`


@pytest.fixture(scope="session")
def trained_job(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> TrainedJob:
    """One small job trained through the queue (`train submit --wait`), shared by read-only tests."""
    root = tmp_path_factory.mktemp("trained")
    ws = new_job_workspace(root, mlflow_template)
    data = csv_slice(CLINC / "demo-part1.csv", root / "slice.csv", 300)
    try:
        result = job_cli(ws, "train", "submit", "--data-path", str(data), "--model-name", "intent",
                         "-P", "epochs=2", "--wait")
    finally:
        stop_job_processes(ws)
    assert result.returncode == 0, result.stderr[-3000:]
    return TrainedJob(ws, result.json["job_id"], result)
