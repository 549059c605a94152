"""Helpers of the serving tests (test_serving.py, test_bentos.py): real models, real servers.

Models are trained by `training_code.train` in child processes (MLflow's global state stays out
of the test process) once per test session: the first module that needs them trains, the others
reuse the workspace recorded under pytest's session temp dir.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from conftest import wait_until

from miniautoml.processes import free_port  # noqa: F401  (the serving tests import it from here)
from miniautoml.processes import process_tree, stop_tree
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLINC = REPO / "data" / "clinc150"
BIN = Path(sys.executable).parent
MODEL_NAME = "intent"
TEXTS = ["what is my bank balance", "book a flight to paris tomorrow", "how do you say thank you in french"]
# Variables of the caller that would point a child at another workspace, store or server setup.
ENV_DROP = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "BENTOML_HOME")


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ENV_DROP and not k.startswith("MINIAUTOML_") and k != "PYTHONPATH"
    }
    env["BENTOML_DO_NOT_TRACK"] = "True"
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    env.update(extra)
    return env


# float32 scores from different batch shapes or CPUs differ in the last bits (summation order):
# compare labels exactly and scores to what float32 arithmetic justifies.
SCORE_TOLERANCE = 1e-5


def same_prediction(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """Same label and top-k labels; every score within SCORE_TOLERANCE."""
    return (
        got["result"] == want["result"]
        and set(got["scores"]) == set(want["scores"])
        and all(abs(got["scores"][k] - want["scores"][k]) <= SCORE_TOLERANCE for k in want["scores"])
    )


# --------------------------------------------------------------------------------------------
# Trained models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedModels:
    """Three real runs in one workspace: v1 and v2 of `intent` (alias champion -> v1), one unregistered."""

    workspace: Path
    tracking_uri: str
    run_v1: str
    run_v2: str
    run_unregistered: str
    name: str = MODEL_NAME

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def set_alias(self, alias: str, version: int) -> None:
        self.client().set_registered_model_alias(self.name, alias, str(version))

    def pyfunc_predictions(self, run_id: str, texts: list[str]) -> list[dict]:
        """What the run's own MLflow pyfunc model answers (DataFrame in, DataFrame out), computed
        in a child process: MLflow resolves `runs:/` through its process-global tracking URI."""
        script = (
            "import json, sys, mlflow.pyfunc, pandas as pd\n"
            "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
            "frame = model.predict(pd.DataFrame({'text': json.loads(sys.argv[2])}))\n"
            "print(json.dumps([{'result': r, 'scores': dict(s)} for r, s in zip(frame['result'], frame['scores'])]))\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", script, f"runs:/{run_id}/model", json.dumps(texts)],
            capture_output=True, text=True, timeout=300,
            env=clean_env(MLFLOW_TRACKING_URI=self.tracking_uri, MINIAUTOML_WORKSPACE=str(self.workspace)),
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])


def _train(workspace: Path, data: Path, seed: int, model_name: str | None) -> subprocess.Popen:
    args = [
        sys.executable, "-m", "training_code.train", f"data.path={data}", "epochs=4", f"seed={seed}",
        f"run_name=serving-test-{seed}",
    ]
    if model_name:
        args.append(f"model_name={model_name}")
    return subprocess.Popen(
        args,
        cwd=REPO,
        env=clean_env(MINIAUTOML_WORKSPACE=str(workspace)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_id(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    found = re.search(r"^run ([0-9a-f]{32}):", out, re.MULTILINE)
    assert proc.returncode == 0 and found, f"training failed ({proc.returncode}):\n{err[-3000:]}"
    return found.group(1)


def trained_models(root: Path) -> TrainedModels:
    """The session's trained workspace under `root`, training it on first use."""
    record = root / "models.json"
    if record.is_file():
        data = json.loads(record.read_text())
        return TrainedModels(**{**data, "workspace": Path(data["workspace"])})
    workspace = root / "ws"
    workspace.mkdir(parents=True, exist_ok=True)
    data = CLINC / "demo-part1.csv"
    assert data.is_file(), f"test data missing: {data}"
    from mlflow import MlflowClient

    tracking_uri = f"sqlite:///{workspace / '.miniautoml' / 'mlflow.db'}"
    (workspace / ".miniautoml").mkdir(exist_ok=True)
    MlflowClient(tracking_uri=tracking_uri).search_experiments()  # create the store before two writers race
    # v1 and the unregistered run in parallel; v2 after v1 (one registry writer at a time).
    first, other = _train(workspace, data, 1, MODEL_NAME), _train(workspace, data, 3, None)
    run_v1 = _run_id(first)
    second = _train(workspace, data, 2, MODEL_NAME)
    run_unregistered, run_v2 = _run_id(other), _run_id(second)
    models = TrainedModels(
        workspace=workspace,
        tracking_uri=tracking_uri,
        run_v1=run_v1,
        run_v2=run_v2,
        run_unregistered=run_unregistered,
    )
    versions = {mv.run_id: int(mv.version) for mv in models.client().search_model_versions(f"name='{MODEL_NAME}'")}
    assert versions == {run_v1: 1, run_v2: 2}, versions
    models.set_alias("champion", 1)
    record.write_text(json.dumps({**asdict(models), "workspace": str(workspace)}))
    return models


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    def post(self, path: str, body: Any = None, *, raw: bytes | None = None, headers: dict | None = None):
        return post(self.url + path, body, raw=raw, headers=headers)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> str:
        """What the server logged after `offset` (a `log_size()` taken earlier)."""
        with open(self.log, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")

    def stop(self) -> None:
        stop_process_tree(self.proc)


def post(url: str, body: Any = None, *, raw: bytes | None = None, headers: dict | None = None) -> tuple[int, Any]:
    """POST JSON (or `raw` bytes); (status, parsed JSON body or text)."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def start_server(argv: list[str], env: dict[str, str], log: Path, *, cwd: Path | None = None,
                 port: int, ready_timeout: float = 120.0, expect_ready: bool = True) -> Server:
    """Start a prediction server and wait (polling, with a deadline) until /readyz answers 200,
    or, with expect_ready=False, until /livez does."""
    handle = open(log, "w")
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    probe = "/readyz" if expect_ready else "/livez"

    def answered() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + probe, timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(answered, ready_timeout, f"{server.url}{probe}", interval=0.1)
    except BaseException:
        server.stop()
        raise
    return server


def stop_process_tree(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the server and everything it started (BentoML workers run in their own sessions)."""
    stop_tree(process_tree(proc.pid), grace=timeout)
    proc.wait(timeout=timeout)


class LoadGenerator:
    """Threads posting /predict for one model id until stopped; answers and failures recorded."""

    def __init__(self, url: str, model_id: str, threads: int = 8) -> None:
        self.url, self.model_id = url, model_id
        self.answers: list[dict] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)]

    def _loop(self, i: int) -> None:
        n = 0
        while not self._stop.is_set():
            text = TEXTS[(i + n) % len(TEXTS)]
            n += 1
            try:
                status, body = post(self.url + "/predict", {"model_id": self.model_id, "document": text})
            except Exception as exc:  # connection errors count as failures
                self.failures.append(repr(exc))
                continue
            if status == 200:
                self.answers.append(body)
            else:
                self.failures.append(f"{status}: {body}")

    def __enter__(self) -> "LoadGenerator":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


# --------------------------------------------------------------------------------------------
# Schemathesis: requests generated from a server's OpenAPI document
# --------------------------------------------------------------------------------------------


def run_schemathesis(url: str, workdir: Path, *, max_examples: int, config: str,
                     timeout: float = 180.0) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`st run` against `url`/docs.json, derandomized (the same cases every run), all checks;
    `config` is a schemathesis.toml. Returns the process and the HAR entries of every request
    it sent and response it got."""
    config_file = workdir / "schemathesis.toml"
    config_file.write_text(config)
    har = workdir / "schemathesis.har"
    argv = [
        str(BIN / "st"), "--config-file", str(config_file), "run", f"{url}/docs.json", "--no-color",
        "--max-examples", str(max_examples), "--generation-deterministic", "--seed", "0",
        "--request-timeout", "30", "--report", "har", "--report-har-path", str(har),
    ]
    proc = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, env=clean_env(), timeout=timeout)
    entries = json.loads(har.read_text())["log"]["entries"] if har.is_file() else []
    return proc, entries
