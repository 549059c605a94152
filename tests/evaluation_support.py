"""A workspace for evaluation and gate tests: the demo datasets, a golden set, trained versions."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO, CliResult, job_cli, new_job_workspace, stop_job_processes

DEMO = REPO / "data" / "demo"
PART1, PART2, EVAL = DEMO / "intents-part1.csv", DEMO / "intents-part2.csv", DEMO / "intents-eval.csv"
MODEL = "intent"
GOOD = ("-P", "epochs=20", "-P", "lr=0.02")  # ~0.9 on the golden set
BAD = ("-P", "epochs=1", "-P", "lr=0.0001")  # barely trained: near chance


@dataclass
class EvalWorkspace:
    path: Path

    def cli(self, *args: str, timeout: float = 600) -> CliResult:
        return job_cli(self.path, *args, timeout=timeout)

    def ok(self, *args: str, timeout: float = 600) -> dict:
        result = self.cli(*args, timeout=timeout)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.json

    def train(self, version_hash: str, params: tuple[str, ...], model: str = MODEL) -> str:
        """Train on dataset `intents`@`version_hash` through the queue; the registered version.
        (The runner stays for the next job; `stop` ends it. Not here: stopping the workspace's
        processes would stop its prediction service too.)"""
        job = self.ok("train", "submit", "--dataset", "intents", "--version-hash", version_hash,
                      "--model-name", model, *params, "--wait", timeout=900)
        return job["metadata"]["model_version"]

    def stop(self) -> None:
        stop_job_processes(self.path)

    def tracking_uri(self) -> str:
        return f"sqlite:///{self.path / '.miniautoml' / 'mlflow.db'}"

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri(), registry_uri=self.tracking_uri())

    def evaluation_runs(self) -> list:
        client = self.client()
        experiment = client.get_experiment_by_name("miniautoml-evaluations")
        return client.search_runs([experiment.experiment_id]) if experiment else []


def demo_workspace(root: Path, template: Path | None) -> EvalWorkspace:
    """Dataset `intents` (part1 = hashAg==, part1+2 = hashBg==) and dataset `golden` (the demo's
    evaluation part, hashAg==), with no model yet."""
    ws = EvalWorkspace(new_job_workspace(root, template))
    ws.ok("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(PART1))
    ws.ok("dataset", "update", "intents", "--file", str(PART2))
    assert ws.ok("dataset", "prepare", "intents", "--commit", "1")["version_hash"] == "hashAg=="
    assert ws.ok("dataset", "prepare", "intents")["version_hash"] == "hashBg=="
    ws.ok("dataset", "create", "golden", "--type", "TEXT_INTENT", "--file", str(EVAL))
    assert ws.ok("dataset", "prepare", "golden")["version_hash"] == "hashAg=="
    return ws


def sklearn_version(ws: EvalWorkspace, name: str, limit: int, env: dict[str, str]) -> str:
    """A foreign model (examples/byo-sklearn: TF-IDF + logistic regression on the first `limit` rows
    of the demo's part 1), registered as a new version of `name` by the user's own script."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "byo-sklearn" / "train.py"), "--data", str(PART1),
         "--limit", str(limit), "--name", name, "--alias", ""],
        cwd=ws.path, capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    versions = ws.client().search_model_versions(f"name = '{name}'")
    return str(max(int(v.version) for v in versions))
