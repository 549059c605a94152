"""`miniautoml up --auth`: MLflow's basic-auth app through a real `mlflow server`.

Logins (401 without, 200 with the admin's), a read-only user made through MLflow's auth API
(reads, 403 on writes), one-line errors without credentials, and the admin's password kept out
of the pid files, `status` and the process command lines.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from conftest import CliResult, free_port
from test_stack import records, stack_cli, teardown_stack, tree

ADMIN = "boss"
PASSWORD = "tr4cking-S3cret%pw"  # `%` on purpose: configparser interpolates it unless escaped
READER, READER_PASSWORD = "reader", "reader-pass-0123"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(url: str, body: dict | None = None, user: tuple[str, str] | None = None) -> tuple[int, str]:
    """GET (no body) or POST JSON, with HTTP basic auth when `user` is given."""
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with NO_PROXY.open(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def creds_env(username: str = ADMIN, password: str = PASSWORD) -> dict[str, str]:
    return {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}


@dataclass
class AuthStack:
    workspace: Path
    up: CliResult
    url: str


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory):
    ws = tmp_path_factory.mktemp("auth") / "ws"
    port = free_port()
    try:
        result = stack_cli(ws, "up", "--auth", "--no-serve", "--mlflow-port", str(port), env=creds_env())
        assert result.returncode == 0, result.stderr
        yield AuthStack(ws, result, f"http://127.0.0.1:{port}")
    finally:
        teardown_stack(ws)


# --------------------------------------------------------------------------- errors before anything starts


def test_up_auth_without_credentials_is_one_line_error_and_starts_nothing(tmp_path: Path):
    ws = tmp_path / "ws"
    env = {"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""}
    result = stack_cli(ws, "up", "--auth", "--no-serve", "--mlflow-port", str(free_port()), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "MLFLOW_TRACKING_USERNAME" in result.error_line and "--auth-secret-file" in result.error_line
    assert records(ws) == {}
    assert not (ws / ".miniautoml" / "stack" / "basic_auth.ini").exists()


@pytest.mark.parametrize("content, says", [
    ("no-colon-here\n", "username:password"),
    (f"{ADMIN}:short\n", "12 characters"),
])  # fmt: skip
def test_a_bad_secret_file_is_one_line_error(tmp_path: Path, content: str, says: str):
    secret = tmp_path / "admin.secret"
    secret.write_text(content)
    result = stack_cli(tmp_path / "ws", "up", "--auth-secret-file", str(secret), "--no-serve",
                       "--mlflow-port", str(free_port()), env=creds_env())  # fmt: skip
    assert result.returncode == 2 and says in result.error_line, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "short" not in result.stderr  # never echoes the secret
    assert records(tmp_path / "ws") == {}


def test_jobs_and_tools_get_the_tracking_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """MLflow's client reads MLFLOW_TRACKING_USERNAME/PASSWORD from the environment: the children
    the CLI and the jobs runner start keep them."""
    from miniautoml.config import load_settings
    from miniautoml.jobs.runner import _child_command

    for key, value in creds_env().items():
        monkeypatch.setenv(key, value)
    settings = load_settings(tmp_path)
    env = _child_command(settings, ["true"], tmp_path).environ()
    assert env["MLFLOW_TRACKING_USERNAME"] == ADMIN and env["MLFLOW_TRACKING_PASSWORD"] == PASSWORD


# --------------------------------------------------------------------------- one server with logins


def test_health_is_open_and_the_api_needs_a_login(auth_stack: AuthStack):
    assert call(auth_stack.url + "/health")[0] == 200
    search = auth_stack.url + "/api/2.0/mlflow/experiments/search?max_results=5"
    assert call(search)[0] == 401
    assert call(search, user=(ADMIN, "wrong-password-123"))[0] == 401
    status, body = call(search, user=(ADMIN, PASSWORD))
    assert status == 200, body
    assert "experiments" in json.loads(body)


def test_up_and_status_report_auth(auth_stack: AuthStack):
    assert auth_stack.up.json["services"]["mlflow"]["auth"] is True
    result = stack_cli(auth_stack.workspace, "status")
    assert result.returncode == 0, result.stderr
    mlflow = result.json["services"]["mlflow"]
    assert mlflow["auth"] is True and mlflow["healthy"] is True and mlflow["admin"] == ADMIN
    config = auth_stack.workspace / ".miniautoml" / "stack" / "basic_auth.ini"
    db = auth_stack.workspace / ".miniautoml" / "basic_auth.db"
    for path in (config, db):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_read_only_user_reads_but_cannot_write(auth_stack: AuthStack, monkeypatch: pytest.MonkeyPatch):
    """The README's recipe: a user made with MLflow's AuthServiceClient, READ on an experiment."""
    import mlflow
    from mlflow.server import get_app_client

    for key, value in creds_env().items():
        monkeypatch.setenv(key, value)  # the admin, as MLflow's client reads it
    mlflow.set_tracking_uri(auth_stack.url)
    try:
        experiment_id = mlflow.create_experiment("admins-experiment")
        auth = get_app_client("basic-auth", tracking_uri=auth_stack.url)
        auth.create_user(READER, READER_PASSWORD)
        auth.grant_user_permission(READER, "experiment", experiment_id, "READ")
    finally:
        mlflow.set_tracking_uri(None)
    reader = (READER, READER_PASSWORD)
    api = auth_stack.url + "/api/2.0/mlflow"
    status, body = call(api + "/experiments/search?max_results=50", user=reader)
    assert status == 200, body
    assert "admins-experiment" in {e["name"] for e in json.loads(body)["experiments"]}
    status, body = call(api + f"/experiments/get?experiment_id={experiment_id}", user=reader)
    assert status == 200, body
    assert call(api + "/runs/create", {"experiment_id": experiment_id}, user=reader)[0] == 403
    assert call(api + "/experiments/update", {"experiment_id": experiment_id, "new_name": "x"}, user=reader)[0] == 403
    assert call(api + "/users/create", {"username": "mallory", "password": "mallory-pass-123"}, user=reader)[0] == 403
    # the admin still writes
    status, body = call(api + "/runs/create", {"experiment_id": experiment_id}, user=(ADMIN, PASSWORD))
    assert status == 200, body


def test_the_password_is_in_no_record_output_or_command_line(auth_stack: AuthStack):
    ws = auth_stack.workspace
    status = stack_cli(ws, "status")
    texts = {"up stdout": auth_stack.up.stdout, "up stderr": auth_stack.up.stderr,
             "status stdout": status.stdout, "status stderr": status.stderr}  # fmt: skip
    for path in (ws / ".miniautoml" / "stack").glob("*.json"):
        texts[str(path)] = path.read_text()
    texts["mlflow.log"] = (ws / ".miniautoml" / "stack" / "mlflow.log").read_text(errors="replace")
    for rec in records(ws).values():
        for pid in tree(rec["pid"]):
            try:
                texts[f"pid {pid} cmdline"] = " ".join(psutil.Process(pid).cmdline())
            except psutil.NoSuchProcess:
                pass
    assert any(k.startswith("pid ") for k in texts)
    leaks = [where for where, text in texts.items() if PASSWORD in text or PASSWORD.replace("%", "%%") in text]
    assert leaks == []
    assert any("--app-name basic-auth" in text for where, text in texts.items() if where.startswith("pid "))


def test_an_auth_database_keeps_its_admin_password(auth_stack: AuthStack):
    """Runs last: `up --auth` with another password over an existing auth database fails
    clearly (MLflow keeps the existing admin's password) and leaves nothing running."""
    ws = auth_stack.workspace
    assert stack_cli(ws, "down", "--grace", "5").returncode == 0
    result = stack_cli(ws, "up", "--auth", "--no-serve", "--mlflow-port", str(free_port()),
                       env=creds_env(password="another-password-456"))  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "cannot log in" in result.error_line and "basic_auth.db" in result.error_line
    assert "another-password-456" not in result.stderr + result.stdout
    assert records(ws) == {}
    assert os.environ.get("MLFLOW_TRACKING_PASSWORD") != "another-password-456"


def test_the_admin_comes_from_the_secret_file_before_the_environment(tmp_path: Path):
    from miniautoml.stack.services import AdminCredentials, admin_credentials

    secret = tmp_path / "admin.secret"
    secret.write_text(f"{ADMIN}:{PASSWORD}:with-colon\n")  # only the first `:` separates
    admin = admin_credentials(secret, environ=creds_env("someone", "environment-password-0"))
    assert admin == AdminCredentials(ADMIN, f"{PASSWORD}:with-colon")
    assert PASSWORD not in repr(admin)


def warnings_of(result: CliResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def test_up_on_all_interfaces_without_auth_warns_naming_the_flag(tmp_path: Path):
    with socket.socket() as busy:  # MLflow's port taken: `up` stops right after its warnings
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = stack_cli(tmp_path / "ws", "up", "--host", "0.0.0.0", "--no-serve", "--mlflow-port", str(port))
    assert result.returncode == 2 and "already in use" in result.error_line, result.stderr
    [warning] = warnings_of(result)
    assert "0.0.0.0" in warning and "--auth" in warning
    assert records(tmp_path / "ws") == {}


def test_up_on_all_interfaces_with_auth_does_not_warn_about_mlflow(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = stack_cli(tmp_path / "ws", "up", "--auth", "--host", "0.0.0.0", "--no-serve",
                           "--mlflow-port", str(port), env=creds_env())  # fmt: skip
    assert result.returncode == 2 and "already in use" in result.error_line, result.stderr
    assert warnings_of(result) == []
