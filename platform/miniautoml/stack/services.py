"""What each service of the local stack runs: its command, environment, address and readiness URL."""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miniautoml.config import PROJECT_ROOT, Settings
from miniautoml.errors import MiniAutoMLError
from miniautoml.processes import Command
from miniautoml.redact import has_credentials, redact_uri

ORDER = ("s3", "mlflow", "serve")  # start order; `down` stops in reverse
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORTS = {"mlflow": 5000, "serve": 3000, "s3": 9000}
PORT_ENV = {"mlflow": "MINIAUTOML_MLFLOW_PORT", "serve": "MINIAUTOML_SERVE_PORT", "s3": "MINIAUTOML_S3_PORT"}
DEFAULT_TIMEOUT = 180.0  # seconds a service may take to become ready
# Keys for the local S3 server when none are in the environment. Local development only.
DEV_ACCESS_KEY = "minioadmin"
DEV_SECRET_KEY = "minioadmin"

BENTO_DIR = PROJECT_ROOT / "bentos"
BENTO_SERVICE = "service:PredictionService"
BIN = Path(sys.executable).parent  # the virtualenv's scripts: mlflow, moto_server


class StackError(MiniAutoMLError):
    """A service of the local stack could not be started or stopped."""


@dataclass(frozen=True)
class StackOptions:
    host: str = DEFAULT_HOST
    mlflow_port: int = DEFAULT_PORTS["mlflow"]
    serve_port: int = DEFAULT_PORTS["serve"]
    s3_port: int = DEFAULT_PORTS["s3"]
    s3: bool = False
    serve: bool = True
    timeout: float = DEFAULT_TIMEOUT

    def port(self, name: str) -> int:
        return {"mlflow": self.mlflow_port, "serve": self.serve_port, "s3": self.s3_port}[name]

    def flag(self, name: str) -> str:
        return f"--{name}-port or {PORT_ENV[name]}"


@dataclass
class Launch:
    """How to start one service and how to tell that it is ready."""

    name: str
    command: Command
    host: str
    port: int
    health_path: str
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in its pid file

    @property
    def url(self) -> str:
        return http_url(self.host, self.port)

    @property
    def health_url(self) -> str:
        return self.url + self.health_path


def stack_dir(settings: Settings) -> Path:
    """Where the services' pid files and logs are."""
    return settings.state_dir / "stack"


def http_url(host: str, port: int) -> str:
    """The URL clients use: a wildcard bind address is reached through the loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _service_env(settings: Settings, keys: Mapping[str, str]) -> dict[str, str]:
    """Variables a service gets on top of the caller's environment."""
    defaults = {"PYTHONUNBUFFERED": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "BENTOML_DO_NOT_TRACK": "True"}
    env = {k: v for k, v in defaults.items() if k not in os.environ}  # local services: no usage reports
    env.update(settings.tool_env())
    env.update(keys)
    return env


def s3_keys(settings: Settings) -> tuple[dict[str, str], bool]:
    """Keys for the S3 server and its clients: the environment's, else the dev-only defaults."""
    storage = settings.storage
    if storage.access_key and storage.secret_key:
        return {"AWS_ACCESS_KEY_ID": storage.access_key, "AWS_SECRET_ACCESS_KEY": storage.secret_key}, False
    return {"AWS_ACCESS_KEY_ID": DEV_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": DEV_SECRET_KEY}, True


def s3_launch(settings: Settings, opts: StackOptions, keys: dict[str, str]) -> Launch:
    env = _service_env(settings, keys)
    extra = {"bucket": settings.storage.bucket}
    minio = shutil.which("minio")
    if minio:
        data = stack_dir(settings) / "minio-data"
        data.mkdir(parents=True, exist_ok=True)
        env["MINIO_ROOT_USER"] = keys["AWS_ACCESS_KEY_ID"]
        env["MINIO_ROOT_PASSWORD"] = keys["AWS_SECRET_ACCESS_KEY"]
        cmd = [minio, "server", str(data), "--address", f"{opts.host}:{opts.s3_port}", "--quiet"]
        return Launch("s3", Command(cmd, settings.state_dir, env), opts.host, opts.s3_port, "/minio/health/ready",
                      {"kind": "minio", "data": str(data), **extra})
    moto = BIN / "moto_server"
    if not moto.exists():
        raise StackError("no S3 server: put `minio` on PATH or install moto[server] in the virtualenv")
    cmd = [str(moto), "-H", opts.host, "-p", str(opts.s3_port)]
    return Launch("s3", Command(cmd, settings.state_dir, env), opts.host, opts.s3_port, "/",
                  {"kind": "moto", "data": "in memory (lost on down)", **extra})


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):].split("?")[0])
    return None


def mlflow_launch(settings: Settings, opts: StackOptions, keys: dict[str, str]) -> Launch | None:
    """The MLflow tracking server + UI on the workspace's store; None when tracking is remote."""
    backend = settings.tracking_uri
    if backend.startswith(("http://", "https://", "databricks")):
        return None  # tracking already lives on a server: nothing to start
    db = _sqlite_path(backend)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    if settings.artifact_root.startswith("file:"):
        Path(urllib.request.url2pathname(settings.artifact_root[len("file://"):])).mkdir(parents=True, exist_ok=True)
    env = _service_env(settings, keys)
    # A store URI with a password goes through the environment (`mlflow server` reads
    # MLFLOW_BACKEND_STORE_URI), never the command line `ps` shows and the pid file records.
    if has_credentials(backend):
        env["MLFLOW_BACKEND_STORE_URI"] = backend
        store_args: list[str] = []
    else:
        store_args = ["--backend-store-uri", backend]
    cmd = [
        str(BIN / "mlflow"), "server",
        "--workers", "1",
        "--host", opts.host,
        "--port", str(opts.mlflow_port),
        *store_args,
        "--default-artifact-root", settings.artifact_root,
        "--artifacts-destination", settings.artifact_root,
    ]  # fmt: skip
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job-runner processes on 2 cores
    return Launch("mlflow", Command(cmd, settings.state_dir, env), opts.host, opts.mlflow_port, "/health",
                  {"backend_store_uri": redact_uri(backend), "artifact_root": redact_uri(settings.artifact_root)})


def serve_launch(
    settings: Settings, host: str, port: int, keys: Mapping[str, str], env: Mapping[str, str] | None = None
) -> Launch:
    """The prediction service of `bentos/` on the workspace's registry, `env` added to its environment.

    Its command line is the one `miniautoml serve` runs (`miniautoml.serving.server_launch`).
    """
    from miniautoml.serving import server_launch

    server = server_launch(settings, host=host, port=port)
    command = Command(list(server.argv), server.cwd, {**_service_env(settings, keys), **server.env, **(env or {})})
    return Launch("serve", command, host, port, "/readyz",
                  {"service": BENTO_SERVICE, "tracking_uri": redact_uri(settings.tracking_uri)})
