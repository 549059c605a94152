"""The metadata store (the book's `run_info`), read from MLflow runs and their metric histories.

Per-epoch metrics are the ones the trainer logs with `step=epoch`; the run's `epochs.json`
artifact gives each epoch's start and end (unix seconds; runs logged before it existed have
`epoch_start_time`/`epoch_end_time` metrics instead). Metrics named `test_*`, and the summary
metrics below, describe the whole run and are not shown per epoch. Lineage comes from the run's
tags: `dataset_id`, `version_hash`, and the code's `mlflow.source.git.commit` (`-dirty` appended
when the trainer's `code_dirty` tag says the code differed from that commit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from miniautoml.config import Settings
from miniautoml.contract.tags import (
    CODE_DIRTY, DATASET_ID, EPOCHS_ARTIFACT, GIT_COMMIT, MESSAGE, RUN_LEVEL_METRICS, VERSION_HASH,
)  # fmt: skip
from miniautoml.errors import NotFoundError
from miniautoml.ids import RUN_ID_RE

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

EPOCH_START, EPOCH_END = "epoch_start_time", "epoch_end_time"  # metrics of older runs
_PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
LAUNCHED_AT_TAG = "miniautoml.launched_at"  # ms since epoch, on runs of older jobs (now in the job record)


@dataclass
class Tracing:
    dataset_id: str | None
    version_hash: str | None
    code_version: str | None


@dataclass
class EpochInfo:
    start_time: str | None
    end_time: str | None
    run_id: str
    epoch_id: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class RunInfo:
    """The book's `run_info`. `success` is None while the run has not ended."""

    start_time: str | None
    end_time: str | None
    success: bool | None
    message: str
    run_id: str
    run_name: str
    tracing: Tracing
    epochs: dict[str, EpochInfo] = field(default_factory=dict)


@dataclass
class RunSummary:
    run_id: str
    run_name: str
    status: str
    start_time: str | None
    end_time: str | None
    message: str
    dataset_id: str | None
    version_hash: str | None


def _iso_ms(ms: int | str | None) -> str | None:
    if ms in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def _iso_s(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(float(seconds), tz=timezone.utc).isoformat(timespec="milliseconds")


def _client(settings: Settings) -> "MlflowClient":
    from miniautoml.adapters import mlflow as mlflow_adapter

    return mlflow_adapter.client(settings)


def get_run(settings: Settings, run_id: str) -> "Run":
    from miniautoml.adapters import mlflow as mlflow_adapter

    run_id = (run_id or "").strip()
    if not RUN_ID_RE.match(run_id):
        raise NotFoundError(f"run {run_id!r} not found (a run id is 32 hex characters)")
    with mlflow_adapter.errors(not_found=f"run {run_id!r} not found", invalid_is_not_found=True):
        run = _client(settings).get_run(run_id)
    if run.info.lifecycle_stage == "deleted":
        raise NotFoundError(f"run {run_id!r} not found (deleted)")
    return run


def _success(status: str) -> bool | None:
    if status == "FINISHED":
        return True
    if status in ("FAILED", "KILLED"):
        return False
    return None


def _default_message(status: str) -> str:
    return {"FINISHED": "finished", "FAILED": "failed", "KILLED": "killed", "RUNNING": "running",
            "SCHEDULED": "queuing"}.get(status, status.lower())


def _epoch_metric(key: str) -> bool:
    return key not in RUN_LEVEL_METRICS and not key.startswith("test_") and key not in (EPOCH_START, EPOCH_END)


def _epoch_times(client: "MlflowClient", run_id: str) -> dict[int, dict[str, Any]]:
    """{epoch: {EPOCH_START: s, EPOCH_END: s}} from the run's epochs.json ({} without one)."""
    import json
    import tempfile

    from miniautoml.environment import temporary_env

    no_bar = temporary_env({_PROGRESS_BAR_ENV: "false"})  # MLflow draws a download bar on stderr otherwise
    try:
        with no_bar, tempfile.TemporaryDirectory(prefix="miniautoml-run-") as tmp:
            path = client.download_artifacts(run_id, EPOCHS_ARTIFACT, tmp)
            with open(path, encoding="utf-8") as fh:
                rows = json.load(fh)["epochs"]
        return {int(r["epoch"]): {EPOCH_START: r.get("start_time"), EPOCH_END: r.get("end_time")} for r in rows}
    except Exception:  # no such artifact (a run that never finished an epoch, or older): no times
        return {}


def epochs_of(client: "MlflowClient", run: "Run") -> dict[str, EpochInfo]:
    run_id = run.info.run_id
    keys = sorted(run.data.metrics)
    per_step: dict[int, dict[str, Any]] = {}
    for key in keys:
        if key not in (EPOCH_START, EPOCH_END) and not _epoch_metric(key):
            continue
        for m in client.get_metric_history(run_id, key):  # the last value at a step wins
            per_step.setdefault(int(m.step), {})[key] = m.value
    if per_step and not any(EPOCH_START in v for v in per_step.values()):
        for step, times in _epoch_times(client, run_id).items():
            if step in per_step:
                per_step[step].update(times)
    epochs: dict[str, EpochInfo] = {}
    for step in sorted(per_step):
        values = per_step[step]
        epochs[str(step)] = EpochInfo(
            start_time=_iso_s(values.pop(EPOCH_START, None)),
            end_time=_iso_s(values.pop(EPOCH_END, None)),
            run_id=run_id,
            epoch_id=step,
            metrics=dict(sorted(values.items())),
        )
    return epochs


def _code_version(tags: dict[str, str]) -> str | None:
    commit = tags.get(GIT_COMMIT) or tags.get("code_version")  # older runs: code_version
    if not commit:
        return None
    return f"{commit}-dirty" if tags.get(CODE_DIRTY) == "true" else commit


def _start_time(settings: Settings, run: "Run") -> str | None:
    """A job's run starts (in MLflow's eyes) when it is queued; its training starts at launch,
    which the job's local record keeps (older runs: a tag)."""
    from miniautoml.jobs import store

    launched = store.read_record(settings, run.info.run_id).get(store.LAUNCHED_AT)
    return launched or _iso_ms(run.data.tags.get(LAUNCHED_AT_TAG) or run.info.start_time)


def show_run(settings: Settings, run_id: str) -> RunInfo:
    """The book's run_info of a training run: times, outcome, lineage and per-epoch metrics."""
    client = _client(settings)
    run = get_run(settings, run_id)
    info, tags = run.info, run.data.tags
    ended = info.status in ("FINISHED", "FAILED", "KILLED")
    return RunInfo(
        start_time=_start_time(settings, run),
        end_time=_iso_ms(info.end_time) if ended else None,
        success=_success(info.status),
        message=tags.get(MESSAGE) or _default_message(info.status),
        run_id=info.run_id,
        run_name=info.run_name or "",
        tracing=Tracing(
            dataset_id=tags.get(DATASET_ID) or None,
            version_hash=tags.get(VERSION_HASH) or None,
            code_version=_code_version(tags),
        ),
        epochs=epochs_of(client, run),
    )


def list_runs(settings: Settings, limit: int = 50) -> list[RunSummary]:
    """Runs of the workspace's experiment, newest first."""
    from miniautoml.adapters import mlflow as mlflow_adapter

    client = _client(settings)
    experiment_id = mlflow_adapter.ensure_experiment(settings)
    runs = client.search_runs([experiment_id], max_results=max(1, min(limit, 50000)),
                              order_by=["attributes.start_time DESC"])
    return [
        RunSummary(
            run_id=r.info.run_id,
            run_name=r.info.run_name or "",
            status=r.info.status,
            start_time=_start_time(settings, r),
            end_time=_iso_ms(r.info.end_time) if r.info.status in ("FINISHED", "FAILED", "KILLED") else None,
            message=r.data.tags.get(MESSAGE) or _default_message(r.info.status),
            dataset_id=r.data.tags.get(DATASET_ID) or None,
            version_hash=r.data.tags.get(VERSION_HASH) or None,
        )
        for r in runs
    ]
