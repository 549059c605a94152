"""What a job launches: `mlflow run` on the MLproject with the run id given up front.

`launch_spec` reads the job's request from its run; `LaunchSpec.argv` is the `mlflow run` command
line (the Ray backend's entrypoint, the runner's cold path) and `LaunchSpec.project_args` the
same call through the MLflow Projects API (the runner's warm path, jobs/warm.py).
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miniautoml.config import PROJECT_ROOT, Settings
from miniautoml.jobs import store
from miniautoml.processes import Command

if TYPE_CHECKING:
    from mlflow.entities import Run

# Variables a parent may carry that would make `mlflow run` or the trainer log to another run.
FOREIGN_ENV = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


@dataclass(frozen=True)
class LaunchSpec:
    """One `mlflow run <project> -e ENTRY --env-manager local --experiment-id X --run-id ID -P ...`."""

    entry_point: str
    experiment_id: str
    run_id: str
    params: dict[str, str]
    storage_dir: Path | None = None

    def argv(self, project: str | None = None, mlflow: list[str] | None = None) -> list[str]:
        """The command line; `project` (default: this checkout) and `mlflow` (the command before
        `run`, default: this environment's) are a Ray node's own (jobs/shipping.py)."""
        cmd = [*(_mlflow_command() if mlflow is None else mlflow), "run", project or str(PROJECT_ROOT),
               "-e", self.entry_point, "--env-manager", "local",
               "--experiment-id", self.experiment_id, "--run-id", self.run_id]
        if self.storage_dir is not None:  # else `mlflow run` leaves a fresh /tmp/tmpXXXX behind per run
            cmd += ["--storage-dir", str(self.storage_dir)]
        for key, value in self.params.items():
            cmd += ["-P", f"{key}={value}"]
        return cmd

    def project_args(self) -> dict[str, Any]:
        """Keyword arguments of `mlflow.projects.run` that `argv` amounts to (as `mlflow run` passes them)."""
        return {
            "uri": str(PROJECT_ROOT), "entry_point": self.entry_point, "experiment_id": self.experiment_id,
            "parameters": dict(self.params), "docker_args": {}, "backend": "local", "env_manager": "local",
            "storage_dir": None if self.storage_dir is None else str(self.storage_dir),
            "synchronous": True, "run_id": self.run_id,
        }  # fmt: skip


def _mlflow_command() -> list[str]:
    exe = Path(sys.executable).with_name("mlflow")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]


def launch_spec(run: "Run", storage_dir: Path | None = None) -> LaunchSpec:
    """The job's `mlflow run`, from the request its run holds."""
    import json

    from miniautoml.algorithms import DEFAULT_ALGORITHM, get_algorithm

    tags = run.data.tags
    # Its declaration (params/algorithms/): the entry point; its config groups come before the -P.
    algorithm = get_algorithm(tags.get(store.ALGORITHM) or DEFAULT_ALGORITHM)
    overrides = [*algorithm.overrides(), *(f"{k}={v}" for k, v in json.loads(tags.get(store.PARAMS) or "{}").items())]
    params = {
        "dataset_id": tags.get(store.DATASET_ID, ""),
        "version_hash": tags.get(store.VERSION_HASH, ""),
        "model_name": tags.get(store.MODEL_NAME, ""),
        "data_path": tags.get(store.DATA_PATH, ""),
        "overrides": shlex.join(overrides),
    }
    return LaunchSpec(algorithm.entry_point, run.info.experiment_id, run.info.run_id, params, storage_dir)


def launch_command(run: "Run", storage_dir: Path | None = None) -> list[str]:
    """`mlflow run <project> -e ENTRY_POINT --env-manager local --experiment-id X --run-id ID -P ...`."""
    return launch_spec(run, storage_dir).argv()


def child_command(settings: Settings, argv: list[str], cwd: Path, **env: str) -> Command:
    """`argv` with the workspace's tool environment, `env` added."""
    child_env = settings.tool_env()
    # MLproject commands say `python`: make it this interpreter even when the venv is not active.
    bindir = str(Path(sys.executable).parent)
    child_env["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    child_env["MINIAUTOML_PYTHON"] = sys.executable  # read by the MLproject command
    child_env["PYTHONUNBUFFERED"] = "1"
    return Command(argv, cwd, {**child_env, **env}, unset=FOREIGN_ENV)


# The MLproject runs `${MINIAUTOML_PYTHON:-python} -m training_code.train`. The runner points
# MINIAUTOML_PYTHON at this wrapper, which records how the trainer ended: `mlflow run` itself
# exits 1 on any failure, so it cannot tell an exception from a SIGKILL.
_WRAPPER = """#!/bin/sh
# Written by the MiniAutoML job runner: run the trainer, record its exit status (128+N: signal N).
"$MINIAUTOML_REAL_PYTHON" "$@"
status=$?
if [ -n "$MINIAUTOML_EXIT_FILE" ]; then echo "$status" > "$MINIAUTOML_EXIT_FILE"; fi
exit "$status"
"""


def trainer_wrapper(settings: Settings) -> Path:
    path = store.logs_dir(settings) / "trainer-python.sh"
    if not path.is_file() or path.read_text() != _WRAPPER:
        from miniautoml.files import atomic_write_text

        atomic_write_text(path, _WRAPPER, mode=0o755)
    return path


def read_status(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
