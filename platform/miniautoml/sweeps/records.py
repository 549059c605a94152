"""A sweep's records (JSON-ready dataclasses) and the metrics a sweep can optimise."""

from __future__ import annotations

from dataclasses import dataclass, field

from miniautoml.contract.tags import EPOCH_METRICS, SUMMARY_METRICS
from miniautoml.errors import UserInputError

# What the trainer logs: the summary of the run, and per epoch (the last epoch's value counts).
# Loss goes down, the rest up.
METRICS = SUMMARY_METRICS + EPOCH_METRICS
DEFAULT_METRIC = "best_val_accuracy"  # the epoch early stopping kept: chosen without the test split
MAXIMIZE, MINIMIZE = "maximize", "minimize"

# trial statuses: the job's (jobs/store.py), and "pruned" for a trial --prune stopped early
SUCCEED, FAILURE, PRUNED = "succeed", "failure", "pruned"
PRUNE_METRIC = "val_accuracy"  # what --prune compares epoch by epoch (jobs/progress.py reads it)


def direction_of(metric: str) -> str:
    """maximize or minimize; UserInputError for a metric the trainer does not log."""
    if metric not in METRICS:
        raise UserInputError(f"--metric {metric!r}: not a metric the trainer logs; expected one of {', '.join(METRICS)}")
    return MINIMIZE if metric.endswith("loss") else MAXIMIZE


@dataclass
class TrialRecord:
    """One trial: its job's run, how it ended, the metric's value and its parameters."""

    number: int  # 0-based, Optuna's trial number
    run_id: str | None  # the job id; None if the job could not even be submitted
    status: str  # succeed | failure | pruned
    value: float | None
    params: dict[str, str]
    message: str = ""


@dataclass
class SweepResult:
    """What `train sweep` prints."""

    sweep_id: str  # the parent run's id
    status: str  # FINISHED | FAILED | KILLED (the parent run's end)
    metric: str
    direction: str
    model_name: str
    best_run_id: str | None
    best_value: float | None
    model_version: str | None
    alias: str | None
    backend: str
    study: str  # the Optuna journal file
    trials: list[TrialRecord] = field(default_factory=list)
    gate: str | None = None  # with --alias: none | passed | failed | forced (evaluation.promotion)
    gate_failed: list[str] = field(default_factory=list)  # the checks the best trial failed
