"""MLflow bookkeeping of a training run: which run, params, tags, dataset input, registry tags."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import warnings
from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from miniautoml.adapters import mlflow as mlflow_adapter
from miniautoml.config import Settings
from training_code.data import Examples

log = logging.getLogger(__name__)

MESSAGE_TAG = "miniautoml.message"  # one line for run lists: the result or the error


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"model": {"name": "x"}}` -> `{"model.name": "x"}`; lists become comma-separated."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(str(v) for v in value)
        else:
            flat[name] = "" if value is None else str(value)
    return flat


def start_run(
    settings: Settings, experiment: str, run_name: str | None
) -> contextlib.AbstractContextManager[mlflow.ActiveRun]:
    """The run to log into: the caller's active run (training called in-process), the run handed
    over by `mlflow run`/the jobs service (MLFLOW_RUN_ID), else a new run in `experiment`.

    A handed-over run keeps its name ("training job N"); `run_name` only names new runs.
    """
    active = mlflow.active_run()
    if active is not None:
        return contextlib.nullcontext(active)  # the caller started it and will end it
    mlflow_adapter.configure(settings)
    if os.environ.get("MLFLOW_RUN_ID"):
        return mlflow.start_run()
    experiment_id = mlflow_adapter.ensure_experiment(settings, experiment)
    return mlflow.start_run(experiment_id=experiment_id, run_name=run_name or None)


def log_new_params(params: Mapping[str, str]) -> None:
    """Log params the run does not have yet: `mlflow run` already logged its entry-point params,
    and MLflow refuses to change a param's value."""
    run = mlflow.active_run()
    assert run is not None
    existing = mlflow.get_run(run.info.run_id).data.params
    for key in sorted(set(params) & set(existing)):
        # `mlflow run` logs entry-point params shell-quoted: "''" for an empty string.
        if existing[key] not in (params[key], shlex.quote(params[key])):
            log.warning("param %s=%r already logged as %r; keeping the logged value", key, params[key], existing[key])
    new = {k: v[:6000] for k, v in params.items() if k not in existing}
    if new:
        mlflow.log_params(new)


def log_dataset(examples: Examples) -> None:
    """The examples as the run's MLflow dataset input (name, DVC digest, source location)."""
    import mlflow.data

    frame = examples.frame()
    try:
        with warnings.catch_warnings():
            # MLflow registers the local-file resolver twice and warns that a path is ambiguous.
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            dataset = mlflow.data.from_pandas(
                frame, source=examples.source, name=examples.name, digest=examples.digest, targets="label"
            )
    except MlflowException:
        # A source scheme MLflow has no resolver for: keep the location as a tag of a code source.
        from mlflow.data.code_dataset_source import CodeDatasetSource

        source = CodeDatasetSource(tags={"uri": examples.source})
        dataset = mlflow.data.from_pandas(
            frame, source=source, name=examples.name, digest=examples.digest, targets="label"
        )
    mlflow.log_input(dataset, context="training")


def tag_model_version(settings: Settings, name: str, version: str, tags: Mapping[str, str]) -> None:
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def tag_handed_over_run(settings: Settings, key: str, value: str) -> None:
    """Best effort: note a failure on the run `mlflow run` created before training could start."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    try:
        MlflowClient(tracking_uri=settings.tracking_uri).set_tag(run_id, key, value)
    except Exception as exc:  # reporting the original error matters more than this tag
        log.debug("could not tag run %s: %s", run_id, exc)
