"""Where a training job runs: one `JobBackend` protocol, one module per engine.

- `local` (backends/local.py): the workspace's runner processes (jobs/runner.py) on this machine;
- `ray` (backends/ray.py): a Ray Job on a Ray cluster (e.g. the one `miniautoml cluster up` started).

The choice: `train submit --backend`, else `MINIAUTOML_JOBS_BACKEND`, else `[jobs] backend` in
miniautoml.toml, else `local`. A job records its backend as the run tag `miniautoml.backend`
(absent: local). The protocol is the shape of MLflow Projects' `SubmittedRun` seen from the
service: the MLflow run stays the record of truth, and how a job's process ended (`Exit`) becomes
its recorded end through the one state machine, jobs/outcome.py (recorded by jobs/finish.py).
What differs per engine — how a job is launched, and one day on how many workers — stays in its
module; the service and the runner only hold a `JobBackend`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from miniautoml.config import Setting, Settings
from miniautoml.errors import UserInputError, shown
from miniautoml.jobs import store
from miniautoml.jobs.backends.local import LOCAL, LocalBackend
from miniautoml.jobs.backends.ray import (
    NODE_TAG,
    RAY,
    RAY_ADDRESS_ENV,
    RayBackend,
    local_remote_problem,
    local_store_problem,
    ray_address,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from miniautoml.jobs.outcome import Exit

BACKENDS = (LOCAL, RAY)
BACKEND_ENV = "MINIAUTOML_JOBS_BACKEND"
BACKEND = Setting("jobs", "backend", (BACKEND_ENV,), LOCAL)

__all__ = [
    "BACKENDS", "BACKEND_ENV", "LOCAL", "NODE_TAG", "RAY", "RAY_ADDRESS_ENV", "JobBackend", "LocalBackend",
    "RayBackend", "backend_of", "choose", "for_run", "local_remote_problem", "local_store_problem", "ray_address",
]  # fmt: skip


class JobBackend(Protocol):
    """An engine that runs training jobs; a job is named by its run id everywhere."""

    name: str

    def submit(self, run: "Run") -> None:
        """Hand a created job (its SCHEDULED run) to the engine; on a refusal, end the job
        failure and raise."""

    def status(self, run: "Run") -> "Run":
        """The job's run brought up to date with the engine: its end recorded once it ended."""

    def cancel(self, run_id: str) -> None:
        """Stop the job's processes (the run's cancel tag is already set)."""

    def logs(self, run_id: str) -> str:
        """The job's output so far."""

    def outcome(self, run_id: str) -> "Exit | None":
        """How the job's process ended, None while it runs (jobs/outcome.py decides the rest)."""


def choose(settings: Settings, explicit: str | None = None) -> str:
    """The backend name; UserInputError for an unknown one."""
    found = settings.get(BACKEND)
    name = str(explicit or found.value).strip().lower()
    if name not in BACKENDS:
        source = "--backend" if explicit else found.source
        raise UserInputError(f"{source} {shown(name)}: unknown jobs backend; expected local or ray")
    return name


def backend_of(run: "Run") -> str:
    return run.data.tags.get(store.BACKEND) or LOCAL


def for_run(settings: Settings, run: "Run", client: "MlflowClient | None" = None) -> JobBackend:
    """The backend that runs job `run` (a Ray job's: the cluster its record names, connected on use)."""
    if backend_of(run) == RAY:
        return RayBackend.of_job(settings, run.info.run_id, client)
    return LocalBackend(settings, client)
