"""What each service of the local stack runs: its command, environment, address and readiness URL."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miniautoml.config import PROJECT_ROOT, Settings
from miniautoml.errors import MiniAutoMLError, UserInputError
from miniautoml.files import atomic_write_text
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


AUTH_USER_ENV = "MLFLOW_TRACKING_USERNAME"  # what MLflow's clients send, also the admin's at `up --auth`
AUTH_PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
AUTH_CONFIG = "basic_auth.ini"  # in stack_dir, 0600: holds the admin's password
AUTH_DB = "basic_auth.db"  # in the state dir, 0600: MLflow's users and permissions
MIN_PASSWORD = 12  # MLflow's own minimum (mlflow.utils.validation._validate_password)


@dataclass(frozen=True)
class AdminCredentials:
    """The tracking server's admin at `up --auth`; the password never shows in a repr."""

    username: str
    password: str = field(repr=False)


def admin_credentials(secret_file: str | os.PathLike[str] | None = None,
                      environ: Mapping[str, str] | None = None) -> AdminCredentials:
    """The admin from `secret_file` (`username:password`, first line) or from
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD; a one-line UserInputError without them."""
    env = os.environ if environ is None else environ
    if secret_file is not None:
        try:
            line = Path(secret_file).read_text(encoding="utf-8").splitlines()[:1]
        except (OSError, UnicodeDecodeError) as exc:
            raise UserInputError(f"--auth-secret-file {secret_file}: cannot read it ({exc.__class__.__name__})") from None
        username, sep, password = (line[0] if line else "").partition(":")
        if not sep or not username or not password:
            raise UserInputError(f"--auth-secret-file {secret_file}: its first line must be `username:password`")
        where = f"--auth-secret-file {secret_file}"
    else:
        username, password = env.get(AUTH_USER_ENV, ""), env.get(AUTH_PASSWORD_ENV, "")
        if not username or not password:
            raise UserInputError(
                f"--auth needs the admin's credentials: set {AUTH_USER_ENV} and {AUTH_PASSWORD_ENV}, "
                "or pass --auth-secret-file FILE holding `username:password`"
            )
        where = f"{AUTH_USER_ENV} / {AUTH_PASSWORD_ENV}"
    for label, value in (("username", username), ("password", password)):
        if value != value.strip() or any(ch in value for ch in "\r\n\0"):
            raise UserInputError(f"{where}: the {label} must not begin or end with blanks or hold line breaks")
    if len(password) < MIN_PASSWORD:
        raise UserInputError(f"{where}: MLflow needs a password of at least {MIN_PASSWORD} characters")
    return AdminCredentials(username, password)


def auth_config_path(settings: Settings) -> Path:
    return stack_dir(settings) / AUTH_CONFIG


def auth_db_path(settings: Settings) -> Path:
    return settings.state_dir / AUTH_DB


def write_auth_config(settings: Settings, admin: AdminCredentials) -> Path:
    """MLflow's basic_auth.ini for this workspace, mode 0600; the auth database created 0600.

    The admin is created from it when the database has no such user yet; an existing admin keeps
    the password it has (MLflow's rule; change it through the update-password API).
    """
    db = auth_db_path(settings)
    db.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))  # sqlite takes an empty file as a new database
    os.chmod(db, 0o600)
    esc = lambda value: value.replace("%", "%%")  # noqa: E731 - configparser interpolates `%`
    text = (
        "# Written by `miniautoml up --auth`; holds the admin's password: keep it 0600, never commit it.\n"
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{esc(str(db))}\n"
        f"admin_username = {esc(admin.username)}\n"
        f"admin_password = {esc(admin.password)}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    path = auth_config_path(settings)
    atomic_write_text(path, text, mode=0o600)
    return path


@dataclass(frozen=True)
class StackOptions:
    host: str = DEFAULT_HOST
    mlflow_port: int = DEFAULT_PORTS["mlflow"]
    serve_port: int = DEFAULT_PORTS["serve"]
    s3_port: int = DEFAULT_PORTS["s3"]
    s3: bool = False
    serve: bool = True
    timeout: float = DEFAULT_TIMEOUT
    auth: AdminCredentials | None = None  # run MLflow with its basic-auth app, this admin


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
    extra: dict[str, Any] = {"backend_store_uri": redact_uri(backend), "artifact_root": redact_uri(settings.artifact_root)}
    unset: tuple[str, ...] = ()
    if opts.auth is not None:
        # The password reaches MLflow through the 0600 config file, never the command line.
        cmd[2:2] = ["--app-name", "basic-auth"]
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(write_auth_config(settings, opts.auth))
        # CSRF key of the auth app's forms: the caller's, else a fresh one per `up` (logins survive
        # a restart; only open UI forms go stale).
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or secrets.token_hex(32)
        unset = ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD")  # they would override the file
        extra.update(auth=True, auth_config=str(auth_config_path(settings)), auth_db=str(auth_db_path(settings)),
                     admin=opts.auth.username)
    return Launch("mlflow", Command(cmd, settings.state_dir, env, unset), opts.host, opts.mlflow_port, "/health",
                  extra)


def serve_launch(
    settings: Settings, host: str, port: int, keys: Mapping[str, str], env: Mapping[str, str] | None = None
) -> Launch:
    """The prediction service of `bentos/` on the workspace's registry, `env` added to its environment.

    Its command line is the one `miniautoml serve` runs (`miniautoml.serving.client.server_launch`).
    """
    from miniautoml.serving.client import server_launch

    server = server_launch(settings, host=host, port=port)
    command = Command(list(server.argv), server.cwd, {**_service_env(settings, keys), **server.env, **(env or {})})
    return Launch("serve", command, host, port, "/readyz",
                  {"service": BENTO_SERVICE, "tracking_uri": redact_uri(settings.tracking_uri)})
