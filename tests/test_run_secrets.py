"""A run trained against a tracking URI that holds a password keeps that password out of
everything the run leaves: artifacts (job.json, the job's logs, the model), tags, params, the
dataset input, the registry, the job's records and logs, and what the CLI printed.

The server is a real `mlflow server --app-name basic-auth` (`miniautoml up --auth`); the trainer
logs in with the credentials of `MLFLOW_TRACKING_URI=http://boss:<password>@host:port` alone.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from conftest import CLINC, CliResult, csv_slice, free_port, job_cli, stop_job_processes
from test_stack import stack_cli, teardown_stack
from test_tracking_auth import ADMIN, PASSWORD, creds_env

# The forms the password could be written in: as typed, and percent-encoded as in the URI.
FORMS = (PASSWORD, quote(PASSWORD, safe=""))
# `up --auth` keeps the admin's password here on purpose (0600, MLflow's auth app reads it).
AUTH_CONFIG = Path(".miniautoml") / "stack" / "basic_auth.ini"


def leaks(texts: dict[str, str]) -> list[str]:
    return sorted(where for where, text in texts.items() if any(form in text for form in FORMS))


@pytest.fixture(scope="module")
def secret_run(tmp_path_factory: pytest.TempPathFactory):
    """`up --auth`, then one small job submitted with the password only in MLFLOW_TRACKING_URI."""
    root = tmp_path_factory.mktemp("secret-run")
    ws = root / "ws"
    port = free_port()
    uri = f"http://{ADMIN}:{FORMS[1]}@127.0.0.1:{port}"
    data = csv_slice(CLINC / "demo-part1.csv", root / "slice.csv", 300)
    no_env_login = {"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""}
    try:
        up = stack_cli(ws, "up", "--auth", "--no-serve", "--mlflow-port", str(port), env=creds_env())
        assert up.returncode == 0, up.stderr
        env = {"MLFLOW_TRACKING_URI": uri, **no_env_login}
        submitted = job_cli(ws, "train", "submit", "--data-path", str(data), "--model-name", "intent-secret",
                            "-P", "epochs=1", "--wait", env=env, timeout=900)  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr[-3000:]
        job_id = submitted.json["job_id"]
        shown = [job_cli(ws, *args, env=env) for args in (("runs", "show", job_id), ("train", "logs", job_id))]
        yield ws, uri, job_id, [submitted, *shown]
    finally:
        stop_job_processes(ws)
        teardown_stack(ws)


def test_the_trainer_logged_in_with_the_uri_s_credentials(secret_run):
    from mlflow import MlflowClient

    _, uri, job_id, _ = secret_run
    run = MlflowClient(tracking_uri=uri).get_run(job_id)
    assert run.info.status == "FINISHED" and run.data.metrics
    assert urlsplit(uri).password == FORMS[1]


def test_no_file_the_run_left_holds_the_password(secret_run):
    """The server's artifact store (run artifacts, logged model), its database (tags, params,
    notes, dataset inputs, registry), the job's records and logs: every file of the workspace."""
    ws, _, _, _ = secret_run
    texts = {
        str(path.relative_to(ws)): path.read_bytes().decode("utf-8", "replace")
        for path in ws.rglob("*")
        if path.is_file() and path.relative_to(ws) != AUTH_CONFIG
    }
    assert any(where.endswith("job.json") for where in texts) and any("job_logs" in where for where in texts)
    assert leaks(texts) == []


def test_no_tag_param_or_artifact_the_api_returns_holds_the_password(secret_run, tmp_path: Path):
    import mlflow
    from mlflow import MlflowClient

    _, uri, job_id, _ = secret_run
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(job_id)
    texts = {f"tag {k}": v for k, v in run.data.tags.items()} | {f"param {k}": v for k, v in run.data.params.items()}
    texts |= {f"input {i}": repr(d) for i, d in enumerate(run.inputs.dataset_inputs)}
    for version in client.search_model_versions("name = 'intent-secret'"):
        texts[f"model version {version.version}"] = repr(version)
    local = Path(mlflow.artifacts.download_artifacts(run_id=job_id, tracking_uri=uri, dst_path=str(tmp_path)))
    for path in local.rglob("*"):
        if path.is_file():
            texts[f"artifact {path.relative_to(local)}"] = path.read_bytes().decode("utf-8", "replace")
    assert "artifact job.json" in texts and "tag mlflow.note.content" in texts
    assert leaks(texts) == []


def test_no_command_printed_the_password(secret_run):
    outputs: list[CliResult] = secret_run[3]
    texts = {f"command {i} {stream}": getattr(out, stream) for i, out in enumerate(outputs) for stream in ("stdout", "stderr")}
    assert all(out.returncode == 0 for out in outputs), [out.stderr[-500:] for out in outputs]
    assert leaks(texts) == []
