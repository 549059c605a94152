"""MLflow tracking/registry wiring for a workspace."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from miniautoml.config import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT = "miniautoml"


def configure(settings: Settings) -> None:
    """Point this process's MLflow (and its S3 artifact client) at the workspace's stores."""
    import mlflow

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(settings.storage.s3_env())
    # MLflow also exports these URIs to os.environ for child processes. Left there, every later
    # load_settings() in this process (say, of another workspace) would read them back as the
    # user's choice; our children get the URI from Settings.tool_env() instead.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def client(settings: Settings) -> "MlflowClient":
    from mlflow import MlflowClient

    configure(settings)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def ensure_experiment(settings: Settings, name: str = EXPERIMENT) -> str:
    """The experiment's id, creating it with the workspace's artifact root (SQLite needs one)."""
    c = client(settings)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        location = f"{settings.artifact_root}/{name}" if settings.artifact_root else None
        return c.create_experiment(name, artifact_location=location)
    except Exception:  # another process created it between our look-up and create
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id
