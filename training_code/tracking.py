"""MLflow bookkeeping of a training run: which run, params, tags, dataset input, registry tags.

A run lands in the workspace's tracking store and experiment whoever starts it: the jobs service
(`mlflow run --run-id`, env set), `python -m training_code.train`, or a bare `mlflow run .`,
which creates its run in MLflow's default store (`./mlflow.db`, experiment `Default`) before the
trainer starts; the trainer then re-homes it (see `rehome_handed_over_run`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from miniautoml.adapters import mlflow as mlflow_adapter
from miniautoml.config import STATE_DIR, Settings, load_settings
from miniautoml.contract import tags as run_tags
from miniautoml.contract.trainer import JOB_ID_ENV
from miniautoml.environment import temporary_env
from miniautoml.redact import redact_text, redact_uri
from training_code.data import Examples

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT_ID = "0"  # MLflow's `Default`: where `mlflow run` puts a run nobody placed


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


def mlflow_default_store_dir(uri: str) -> Path | None:
    """The directory `mlflow run` ran in if `uri` is MLflow's own default store there
    (`<cwd>/mlflow.db`, or `<cwd>/mlruns` when that holds older runs): what `mlflow run` exports to
    its entry point when the user set no MLFLOW_TRACKING_URI. None for any other store; a
    workspace's is never one (its default lives in `.miniautoml/`)."""
    if uri.startswith("sqlite:///"):
        path = Path(unquote(uri[len("sqlite:///"):]))
        return path.parent if path.name == "mlflow.db" and path.parent.name != STATE_DIR else None
    path = Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri) if "://" not in uri else None
    return path.parent if path is not None and path.name == "mlruns" else None


def workspace_settings() -> Settings:
    """`load_settings()`, except under a bare `mlflow run` (MLFLOW_RUN_ID set, MLFLOW_TRACKING_URI
    MLflow's default store): that URI was not the user's choice, and the workspace is found from
    the directory `mlflow run` ran in (the entry point itself runs in the project directory)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    user_dir = mlflow_default_store_dir(uri) if uri and os.environ.get("MLFLOW_RUN_ID") else None
    if user_dir is None:
        return load_settings()
    workspace = None
    if not os.environ.get("MINIAUTOML_WORKSPACE"):
        top = subprocess.run(["git", "-C", str(user_dir), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
        workspace = Path(top.stdout.strip()) if top.returncode == 0 and top.stdout.strip() else user_dir
    with temporary_env({"MLFLOW_TRACKING_URI": None}):  # the workspace's own store, not MLflow's default
        return load_settings(workspace)


def _store_key(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        return "sqlite:" + str(Path(unquote(uri[len("sqlite:///"):])).resolve())
    if uri.startswith("file:") or "://" not in uri:
        return "file:" + str(Path(unquote(urlparse(uri).path) if uri.startswith("file:") else uri).resolve())
    return uri.rstrip("/")


def start_run(
    settings: Settings, experiment: str, run_name: str | None
) -> contextlib.AbstractContextManager[mlflow.ActiveRun]:
    """The run to log into: the caller's active run (training called in-process), the run handed
    over by `mlflow run`/the jobs service (MLFLOW_RUN_ID), else a new run in `experiment`.

    A handed-over run keeps its name ("training job N"); `run_name` only names new runs. Call
    `rehome_handed_over_run` first, so that a handed-over run is one of the workspace's.
    """
    active = mlflow.active_run()
    if active is not None:
        return contextlib.nullcontext(active)  # the caller started it and will end it
    mlflow_adapter.configure(settings)
    if os.environ.get("MLFLOW_RUN_ID"):
        return mlflow.start_run()
    experiment_id = mlflow_adapter.ensure_experiment(settings, experiment)
    return mlflow.start_run(experiment_id=experiment_id, run_name=run_name or None)


def rehome_handed_over_run(settings: Settings, experiment: str) -> dict[str, str] | None:
    """Move the run `mlflow run` handed over (MLFLOW_RUN_ID) into the workspace when it is
    elsewhere; returns where it came from (None when it stays).

    MLflow runs cannot change store or experiment, so a new run is created in the workspace's
    store and experiment with the handed-over run's name, source tags and entry-point params, and
    MLFLOW_RUN_ID/MLFLOW_TRACKING_URI/MLFLOW_EXPERIMENT_ID of this process point at it. The stray
    run gets the new run's id as a tag and a note saying where it went; it is not deleted, since
    `mlflow run` sets its final status when the trainer exits (and fails on a deleted run).
    Nothing is logged to the stray store's artifact root (no `mlruns/`).
    """
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id or mlflow.active_run() is not None:
        return None
    mlflow_adapter.configure(settings)
    handed_uri = os.environ.get("MLFLOW_TRACKING_URI") or settings.tracking_uri
    same_store = _store_key(handed_uri) == _store_key(settings.tracking_uri)
    handed_client = MlflowClient(tracking_uri=handed_uri)
    handed = handed_client.get_run(run_id)
    in_default = handed.info.experiment_id == DEFAULT_EXPERIMENT_ID and experiment != "Default"
    if same_store and not in_default:
        return None  # the jobs service's runs, or a user's explicit store and experiment
    if not in_default:  # an experiment the user chose, in another store: keep its name
        experiment = handed_client.get_experiment(handed.info.experiment_id).name
    client = mlflow_adapter.client(settings)
    experiment_id = mlflow_adapter.ensure_experiment(settings, experiment)
    tags = {k: v for k, v in handed.data.tags.items() if k != "mlflow.runName"}
    new = client.create_run(experiment_id, run_name=handed.info.run_name or None, tags=tags)
    new_id = new.info.run_id
    if handed.data.params:
        from mlflow.entities import Param

        client.log_batch(new_id, params=[Param(k, v) for k, v in handed.data.params.items()])
    # Both stores' URIs go into a tag and the trainer's log (a job's log is one of its artifacts).
    shown_uri = redact_uri(handed_uri)
    where = f"experiment {experiment!r} of workspace {settings.workspace} ({redact_uri(settings.tracking_uri)})"
    note = (
        f"Moved: `mlflow run` created this run in {shown_uri} (experiment {handed.info.experiment_id}); "
        f"MiniAutoML trains it as run {new_id} in {where}."
    )
    try:
        handed_client.set_tag(run_id, run_tags.MOVED_TO, new_id)
        handed_client.set_tag(run_id, "mlflow.note.content", note)
    except Exception as exc:  # the stray run is clutter; training must not fail for it
        log.warning("could not mark run %s in %s as moved: %s", run_id, shown_uri, redact_text(str(exc)))
    log.warning(
        "`mlflow run` created run %s in %s, experiment %s; training it as run %s in %s instead "
        "(set MLFLOW_TRACKING_URI and --experiment-name to skip this detour)",
        run_id, shown_uri, handed.info.experiment_id, new_id, where,
    )  # fmt: skip
    os.environ.update(
        {"MLFLOW_RUN_ID": new_id, "MLFLOW_TRACKING_URI": settings.tracking_uri, "MLFLOW_EXPERIMENT_ID": experiment_id}
    )
    return {"tracking_uri": shown_uri or "", "run_id": run_id, "experiment_id": handed.info.experiment_id}


def log_new_params(params: Mapping[str, str]) -> None:
    """Log params the run does not have yet: `mlflow run` already logged its entry-point params,
    and MLflow refuses to change a param's value."""
    run = mlflow.active_run()
    assert run is not None
    existing = mlflow.get_run(run.info.run_id).data.params
    for key in sorted(set(params) & set(existing)):
        # `mlflow run` logs entry-point params shell-quoted: "''" for an empty string, which is
        # also how it logs a parameter left unset (`epochs` from params/): no conflict either.
        if existing[key] not in (params[key], shlex.quote(params[key]), "''"):
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
    for attempt in range(3):
        try:
            mlflow.log_input(dataset, context="training")
            return
        except MlflowException as exc:
            # Runs logging the same dataset at once (a sweep's parallel trials): MLflow's
            # get-or-create of the dataset row is not atomic and the loser hits the unique key.
            # The row exists now, so logging again links it to this run.
            if not _duplicate_key(exc) or attempt == 2:
                raise


def _duplicate_key(exc: MlflowException) -> bool:
    text = str(exc)
    return "UNIQUE constraint failed" in text or "duplicate key value" in text


def tag_model_version(settings: Settings, name: str, version: str, tags: Mapping[str, str]) -> None:
    """The version's lineage (run_id, snapshot_md5, dataset_id, version_hash): the trainer is the
    one place that registers a model and writes these; the jobs runner only reads them back."""
    client = mlflow_adapter.client(settings)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def tag_handed_over_run(settings: Settings, key: str, value: str) -> None:
    """Best effort: note a failure on the run `mlflow run` created before training could start
    (in the store it was created in: MLFLOW_TRACKING_URI as `mlflow run` exported it)."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    try:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or settings.tracking_uri
        MlflowClient(tracking_uri=uri).set_tag(run_id, key, value)
    except Exception as exc:  # reporting the original error matters more than this tag
        log.debug("could not tag run %s: %s", run_id, exc)


# --- what the MLflow UI shows: lineage tags, a description; internals go to job.json ------------
def user_tag(run: mlflow.entities.Run) -> dict[str, str]:
    """`mlflow.user` for runs created without one (the jobs service's, `mlflow run --run-id`)."""
    if run.data.tags.get("mlflow.user"):
        return {}
    import getpass

    try:
        return {"mlflow.user": getpass.getuser()}
    except Exception:  # no user name in this environment (e.g. a container without passwd)
        return {}


def dataset_tags(settings: Settings, examples: Examples) -> dict[str, str]:
    """The data, plainly: `dataset_name`, and `dataset_id`, `dataset_commits`, `version_hash` for a
    snapshot of the dataset service or `data_path` for CSV files; `snapshot_md5` (DVC's md5)."""
    tags = {run_tags.DATASET_NAME: examples.name, run_tags.SNAPSHOT_MD5: examples.digest}
    if examples.dataset_id is None:
        return tags | {run_tags.DATA_PATH: examples.source}
    tags |= {run_tags.DATASET_ID: examples.dataset_id, run_tags.VERSION_HASH: str(examples.version_hash)}
    try:
        from miniautoml.contract.data import lineage

        found = lineage(settings, examples.dataset_id, str(examples.version_hash))
        tags[run_tags.DATASET_NAME] = found.dataset_name
        tags[run_tags.DATASET_COMMITS] = ",".join(str(c) for c in found.commits)
    except Exception as exc:  # the service loaded the snapshot; its metadata is a nicety here
        log.debug("dataset %s: no name/commits for the run's tags: %s", examples.dataset_id, exc)
    return tags


def describe(params: Mapping[str, Any], tags: Mapping[str, str], result: str = "") -> str:
    """The run's description (`mlflow.note.content`, Markdown): what was trained on what."""
    model, opt, data = params["model"], params["optimizer"], params["data"]
    what = (
        f"Intent classifier `{model['name']}` ({opt['name']}, lr {params['lr']}, batch {params['batch_size']}, "
        f"up to {params['epochs']} epochs, seed {params['seed']})"
    )
    if tags.get(run_tags.DATASET_ID):
        commits = tags.get(run_tags.DATASET_COMMITS, "?").replace(",", ", ")
        on = (
            f"dataset **{tags[run_tags.DATASET_NAME]}** (id {tags[run_tags.DATASET_ID]}), "
            f"commit{'s' if ',' in commits else ''} {commits}, version hash `{tags[run_tags.VERSION_HASH]}`"
        )
    else:
        on = f"CSV data **{tags[run_tags.DATASET_NAME]}** (`{tags.get(run_tags.DATA_PATH, '')}`)"
    if int(data.get("limit") or 0):
        on += f", a sample of {data['limit']} rows"
    return f"{what} trained on {on}." + (f"\n\n{result}" if result else "")


def job_record(
    settings: Settings, run: mlflow.entities.Run, moved_from: Mapping[str, str] | None, handed_over: bool = False
) -> dict[str, Any]:
    """How and where this trainer ran (job.json): kept out of the run's tags. It is uploaded with
    the run's artifacts, so every URI in it, argv's included, has its password masked.
    `handed_over`: the run came from MLFLOW_RUN_ID (`mlflow run` or the jobs service)."""
    import socket
    import sys
    from datetime import datetime, timezone

    job_id = os.environ.get(JOB_ID_ENV)
    launched_by = "jobs service" if job_id else "mlflow run" if moved_from or handed_over else "python"
    return {
        "run_id": run.info.run_id,
        "launched_by": launched_by,
        "job_id": job_id,
        "moved_from": dict(moved_from) if moved_from else None,  # the run `mlflow run` created elsewhere
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "parent_pid": os.getppid(),
        "python": sys.executable,
        "argv": [redact_text(word) for word in sys.argv],
        "cwd": os.getcwd(),
        "workspace": str(settings.workspace),
        "tracking_uri": redact_uri(settings.tracking_uri),
        "artifact_uri": redact_uri(run.info.artifact_uri),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
