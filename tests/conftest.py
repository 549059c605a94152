"""Shared fixtures: temporary workspaces, the CLI as a real process, a real S3 server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CLINC = SHARED / "data" / "clinc150"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers (any HTTP status), or fail with what the process said."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


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
    assert path.is_file(), f"test data missing: {path} (../shared must sit beside the repo)"
    return path


@pytest.fixture
def clinc_part2() -> Path:
    path = CLINC / "demo-part2.csv"
    assert path.is_file(), f"test data missing: {path}"
    return path
