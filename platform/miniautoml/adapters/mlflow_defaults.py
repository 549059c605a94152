"""MLflow's defaults in a workspace: its store and `miniautoml` experiment, not ./mlflow.db.

An MLflow default-experiment provider (the `mlflow.default_experiment_provider` plugin group,
declared in pyproject.toml). MLflow asks it for the experiment of a run nobody placed: `mlflow run`
without --experiment-name, `mlflow.start_run()` with no experiment set. When that happens in a
workspace and nobody chose a store either (no MLFLOW_TRACKING_URI or set_tracking_uri, so MLflow
would create ./mlflow.db), it points this process's MLflow at the workspace's store and answers
the workspace's experiment; MLflow then creates the run there, before any ./mlflow.db exists.
An existing ./mlflow.db stays the user's store.
"""

from __future__ import annotations

import os

from mlflow.tracking.default_experiment.abstract_context import DefaultExperimentProvider

SQLITE_DEFAULT = "mlflow.db"  # MLflow's default store, in the current directory


def _unplaced_store() -> bool:
    """Nobody chose a store: MLflow's is its default, a ./mlflow.db that does not exist yet."""
    import mlflow
    from mlflow.utils.file_utils import path_to_local_sqlite_uri

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return False
    default = os.path.abspath(SQLITE_DEFAULT)
    return mlflow.get_tracking_uri() == path_to_local_sqlite_uri(default) and not os.path.exists(default)


class WorkspaceExperimentProvider(DefaultExperimentProvider):
    """The workspace's store and `miniautoml` experiment for runs started in it unplaced."""

    def in_context(self) -> bool:
        from miniautoml.config import find_workspace, is_workspace

        return _unplaced_store() and is_workspace(find_workspace())

    def get_experiment_id(self) -> str:
        from miniautoml.adapters import mlflow as mlflow_adapter
        from miniautoml.config import load_settings

        settings = load_settings()
        mlflow_adapter.configure(settings)  # MLflow creates the run in this store, not ./mlflow.db
        return mlflow_adapter.ensure_experiment(settings)
