"""The trainer's dataset input survives a concurrent run inserting the same dataset first."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from training_code import tracking


class _Examples:
    name, digest, source = "part", "0" * 32, "file:///tmp/part.csv"

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"text": ["hi"], "label": ["greet"]})


def test_a_duplicate_dataset_row_from_a_concurrent_run_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def log_input(dataset, context):  # type: ignore[no-untyped-def]
        calls.append(context)
        if len(calls) == 1:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id")

    monkeypatch.setattr(tracking.mlflow, "log_input", log_input)
    tracking.log_dataset(_Examples())  # type: ignore[arg-type]
    assert calls == ["training", "training"]


def test_other_tracking_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def log_input(dataset, context):  # type: ignore[no-untyped-def]
        calls.append(context)
        raise MlflowException("the tracking server said no")

    monkeypatch.setattr(tracking.mlflow, "log_input", log_input)
    with pytest.raises(MlflowException, match="said no"):
        tracking.log_dataset(_Examples())  # type: ignore[arg-type]
    assert calls == ["training"]
