"""Recording a job's end in its run, for any backend: the outcome (jobs/outcome.py) of its `Exit`,
its model version, its logs and local record as artifacts, and the `done` state tag last."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from miniautoml.config import Settings
from miniautoml.jobs import outcome, store
from miniautoml.jobs.messages import last_error_line

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("miniautoml.jobs.finish")


def finish(settings: Settings, client: "MlflowClient", run_id: str, exit: outcome.Exit,
           err_path: Path | None = None) -> str:
    """Record the end of job `run_id` whose process ended as `exit` (its stderr at `err_path`,
    read for the message when `exit` has none). Returns the MLflow status it ends with."""
    run = client.get_run(run_id)
    tags = run.data.tags
    if err_path is not None and not exit.last_line:
        exit = replace(exit, last_line=last_error_line(err_path))
    end = outcome.ending(exit, run.info.status, cancelled=tags.get(store.CANCEL) == "1")
    if end.check_model:  # the trainer may have left it RUNNING; the version is read from a FINISHED run
        if run.info.status != "FINISHED":
            client.set_terminated(run_id, "FINISHED")
        end = _with_model(settings, run_id, end, tags.get(store.MODEL_NAME))
        if end.mlflow_status != "FINISHED":
            client.set_terminated(run_id, end.mlflow_status)
    elif run.info.status != end.mlflow_status:
        client.set_terminated(run_id, end.mlflow_status)
    final: dict[str, str] = {store.EXIT_CODE: str(end.exit_code)}
    if end.model_version is not None:
        final[store.MODEL_VERSION] = end.model_version
    if end.message is not None:
        final[store.MESSAGE] = end.message
    if err_path is not None:
        _attach_logs(client, run_id, err_path)
    store.log_record(settings, client, run_id, exit_code=exit.returncode, trainer_status=exit.trainer_status)
    final[store.STATE] = store.STATE_DONE
    store.set_tags(client, run_id, final)
    log.info("job %s: %s (exit code %s)", run_id, end.mlflow_status, exit.returncode)
    return end.mlflow_status


def _with_model(settings: Settings, run_id: str, end: outcome.Ending, model_name: str | None) -> outcome.Ending:
    """The trainer registers the model; the job's record names the version."""
    if not model_name:
        return outcome.registered(end, None, None)
    from miniautoml import registry

    try:
        version = registry.registered_version(settings, run_id, model_name)
    except Exception as exc:  # the job's contract includes the registered model
        log.exception("job %s: reading the model version failed", run_id)
        return outcome.registered(end, model_name, None, f"could not read the registered version of {model_name!r}: {exc}")
    return outcome.registered(end, model_name, None if version is None else version.version)


def fail(settings: Settings, client: "MlflowClient", run_id: str, message: str, status: str = "FAILED") -> str:
    """End a job for a reason of its backend's own (not the trainer's)."""
    log.warning("job %s: %s", run_id, message)
    store.set_tags(client, run_id, {store.MESSAGE: message, store.STATE: store.STATE_DONE})
    client.set_terminated(run_id, status)
    store.log_record(settings, client, run_id)
    return status


def _attach_logs(client: "MlflowClient", run_id: str, err_path: Path) -> None:
    """Keep the job's output with the run (artifact `job_logs/`), best effort."""
    for path in (err_path.with_name(err_path.name.replace(".err.", ".out.")), err_path):
        try:
            if path.is_file() and path.stat().st_size:
                client.log_artifact(run_id, str(path), "job_logs")
        except Exception as exc:  # logs are a convenience; never fail the job for them
            log.warning("job %s: could not upload %s: %s", run_id, path.name, exc)
