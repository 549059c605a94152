"""The metadata store: `runs show` builds the book's run_info from an MLflow run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import job_cli, job_settings, new_job_workspace

from miniautoml.errors import NotFoundError
from miniautoml.runs import show_run

RUN_INFO_KEYS = {"start_time", "end_time", "success", "message", "run_id", "run_name", "tracing", "epochs"}


@pytest.fixture(scope="module")
def shown(trained_job) -> dict:
    """`runs show` of the shared trained job."""
    result = job_cli(trained_job.workspace, "runs", "show", trained_job.job_id)
    assert result.returncode == 0, result.stderr
    return result.json


@pytest.fixture
def synthetic_run(tmp_path: Path, mlflow_template: Path):
    """A run logged the way the trainer logs one, without training: fast and exact."""
    from mlflow.entities import Metric

    from miniautoml.adapters import mlflow as mlflow_adapter

    settings = job_settings(new_job_workspace(tmp_path, mlflow_template))
    client = mlflow_adapter.client(settings)
    tags = {"dataset_id": "3", "version_hash": "hashBg==", "mlflow.source.git.commit": "abc123", "code_dirty": "false"}
    run = client.create_run(mlflow_adapter.ensure_experiment(settings), run_name="training job 7", tags=tags)
    run_id = run.info.run_id
    metrics, times = [], []
    for epoch, (loss, acc) in enumerate([(2.0, 0.5), (1.0, 0.75)], start=1):
        for key, value in {"loss": loss, "val_accuracy": acc}.items():
            metrics.append(Metric(key, value, 0, epoch))
        times.append({"epoch": epoch, "start_time": 1_700_000_000.0 + 10 * epoch, "end_time": 1_700_000_005.0 + 10 * epoch})
    metrics.append(Metric("test_accuracy", 0.7, 0, 0))
    client.log_batch(run_id, metrics=metrics)
    client.log_dict(run_id, {"epochs": times}, "epochs.json")  # the trainer's per-epoch times
    return settings, client, run_id


def test_runs_show_has_the_books_shape(trained_job, shown):
    info = shown["run_info"]
    assert set(info) == RUN_INFO_KEYS
    assert set(info["tracing"]) == {"dataset_id", "version_hash", "code_version"}
    assert info["run_id"] == trained_job.job_id
    assert info["run_name"] == "training job 1"


def test_runs_show_of_a_trained_job_reports_success_and_test_accuracy(shown):
    info = shown["run_info"]
    assert info["success"] is True
    assert info["message"].startswith("test accuracy 0.")
    assert info["start_time"] <= info["end_time"]
    # The trainer tags the code's git commit (`-dirty`: trained from uncommitted changes).
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", info["tracing"]["code_version"])


def test_runs_show_of_a_trained_job_lists_each_epoch(trained_job, shown):
    info = shown["run_info"]
    epochs = info["epochs"]
    assert sorted(epochs) == ["1", "2"]  # the trainer numbers epochs from 1; -P epochs=2
    for key, epoch in epochs.items():
        assert epoch["epoch_id"] == int(key)
        assert epoch["run_id"] == trained_job.job_id
        assert info["start_time"] <= epoch["start_time"] <= epoch["end_time"] <= info["end_time"]
        assert {"loss", "train_accuracy", "val_loss", "val_accuracy"} == set(epoch["metrics"])


def test_epochs_take_metrics_by_step_and_times_from_the_epochs_artifact(synthetic_run):
    settings, _, run_id = synthetic_run
    info = show_run(settings, run_id)
    assert {k: e.metrics for k, e in info.epochs.items()} == {
        "1": {"loss": 2.0, "val_accuracy": 0.5},
        "2": {"loss": 1.0, "val_accuracy": 0.75},
    }
    assert info.epochs["2"].start_time == "2023-11-14T22:13:40.000+00:00"
    assert info.epochs["2"].end_time == "2023-11-14T22:13:45.000+00:00"


def test_runs_logged_with_epoch_time_metrics_still_show_their_times(synthetic_run):
    """Runs trained before epochs.json logged each epoch's times as metrics."""
    from mlflow.entities import Metric

    settings, client, run_id = synthetic_run
    old = client.create_run(client.get_run(run_id).info.experiment_id).info.run_id
    client.log_batch(old, metrics=[Metric("loss", 2.0, 0, 1), Metric("epoch_start_time", 1_700_000_010.0, 0, 1),
                                   Metric("epoch_end_time", 1_700_000_015.0, 0, 1)])
    [epoch] = show_run(settings, old).epochs.values()
    assert (epoch.metrics, epoch.start_time, epoch.end_time) == (
        {"loss": 2.0}, "2023-11-14T22:13:30.000+00:00", "2023-11-14T22:13:35.000+00:00")


def test_tracing_comes_from_the_run_tags(synthetic_run):
    settings, client, run_id = synthetic_run
    tracing = show_run(settings, run_id).tracing
    assert (tracing.dataset_id, tracing.version_hash, tracing.code_version) == ("3", "hashBg==", "abc123")
    client.set_tag(run_id, "code_dirty", "true")  # trained from uncommitted changes of that commit
    assert show_run(settings, run_id).tracing.code_version == "abc123-dirty"


def test_a_running_run_has_no_outcome_yet(synthetic_run):
    settings, _, run_id = synthetic_run
    info = show_run(settings, run_id)
    assert info.success is None and info.end_time is None


def test_a_failed_run_reports_its_failure_message(synthetic_run):
    settings, client, run_id = synthetic_run
    client.set_tag(run_id, "miniautoml.message", "trainer killed by SIGKILL")
    client.set_terminated(run_id, "FAILED")
    info = show_run(settings, run_id)
    assert info.success is False
    assert info.message == "trainer killed by SIGKILL"
    assert info.end_time is not None


def test_unknown_run_is_a_clear_error(trained_job):
    result = job_cli(trained_job.workspace, "runs", "show", "ffffffffffffffffffffffffffffffff")
    assert result.returncode == 2
    assert result.error_line == "error: run 'ffffffffffffffffffffffffffffffff' not found"


def test_malformed_run_id_is_a_not_found_error(synthetic_run):
    settings, _, _ = synthetic_run
    with pytest.raises(NotFoundError, match="run 'nope' not found"):
        show_run(settings, "nope")
