"""Patches of MLflow internals: a fork drops the client state it inherited, and MLflow Projects'
local backend lets us start an entry point's command. Pinned on MLflow 3.17
(tests/test_compat_mlflow.py); outside it, jobs start cold and trainers through the shell.

**Client state.** MLflow keeps, per process, the URIs set by `set_tracking_uri`/`set_registry_uri`
(`_tracking_service.utils._tracking_uri`, `_model_registry.utils._registry_uri`), the active
experiment and run stacks (`fluent`), SQLAlchemy engines per database URI
(`SqlAlchemyStore._engine_map`) and cached HTTP and S3 sessions. A fork inherits all of it:
`drop_client_state()` leaves MLflow as a new process has it (URIs read from the environment
again, connections of its own, no active run). Callers use `adapters.mlflow.reset_after_fork()`.

**Entry points.** `mlflow.projects.backend.local._run_entry_point(command, work_dir,
experiment_id, run_id)` runs an entry point as `bash -c command` with the run's environment.
Within `entry_points_started_by(starter)` a command the starter claims is started by it instead
(the same environment, the same log line, the same `LocalSubmittedRun`): how a warm job forks its
trainer. Any other command goes to MLflow's own function.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from miniautoml.compat import guard

PINNED = "mlflow>=3.17,<3.18"
CLIENT_STATE = guard("MLflow fork reset", PINNED, unpatched="jobs start cold (a fork would keep MLflow's client state)")
ENTRY_POINT = guard("MLflow entry-point starter", PINNED, unpatched="trainers start through the shell, as in `mlflow run`")
# sha256 of `inspect.getsource(mlflow.projects.backend.local._run_entry_point)` in MLflow 3.17:
# `entry_points_started_by` repeats its environment, log line and return value.
RUN_ENTRY_POINT_SHA256 = "f0331430ba8b09936523e0931d469e9283a9cb3ee49c73ccb77d9b8169c2f7c2"


def drop_client_state() -> None:
    """Leave this process's MLflow as a new process has it (see the module's docstring)."""
    CLIENT_STATE.require()
    from mlflow.store.artifact import s3_artifact_repo
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils
    from mlflow.utils import request_utils

    # The parent's pooled connections stay the parent's (SQLAlchemy's recipe for a fork).
    for engine in [*TrackingStore._engine_map.values(), *RegistryStore._engine_map.values()]:
        engine.dispose(close=False)
    request_utils._cached_get_request_session.cache_clear()  # HTTP sockets
    s3_artifact_repo._cached_get_s3_client.cache_clear()
    tracking_utils._tracking_uri = None
    registry_utils._registry_uri = None
    fluent._active_experiment_id = None
    fluent._active_run_stack.reset()
    fluent._last_active_run_id.reset()


@dataclass(frozen=True)
class Starter:
    """Starts the entry-point commands it `claims` in MLflow's place: `start(command, work_dir,
    env)` returns a process as `subprocess.Popen` shows one (pid, poll, wait, signals)."""

    claims: Callable[[str], bool]
    start: Callable[[str, str, dict[str, str]], Any]


@contextlib.contextmanager
def entry_points_started_by(starter: Starter) -> Iterator[None]:
    """MLflow Projects' local backend, starting the commands `starter` claims through it."""
    if not ENTRY_POINT.applies():
        yield
        return
    import mlflow
    from mlflow.projects.backend import local
    from mlflow.projects.submitted_run import LocalSubmittedRun

    original = local._run_entry_point

    def run_entry_point(command: str, work_dir: str, experiment_id: str, run_id: str) -> Any:
        if not starter.claims(command):
            return original(command, work_dir, experiment_id, run_id)
        env = os.environ.copy()
        env.update(local.get_run_env_vars(run_id, experiment_id))
        env.update(local.get_databricks_env_vars(tracking_uri=mlflow.get_tracking_uri()))
        local._logger.info("=== Running command '%s' in run with ID '%s' === ", command, run_id)
        return LocalSubmittedRun(run_id, starter.start(command, work_dir, env))

    local._run_entry_point = run_entry_point
    try:
        yield
    finally:
        local._run_entry_point = original
