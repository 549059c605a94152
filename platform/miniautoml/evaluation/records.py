"""The evaluation service's records: golden sets, evaluations, gate decisions (JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXPERIMENT = "miniautoml-evaluations"  # where evaluation runs go

# Metrics an evaluation reports (the names users give `--metric` and `--threshold`), and whether
# greater is better. `log_loss` only when the model gives scores.
METRICS: dict[str, bool] = {"accuracy": True, "macro_f1": True, "weighted_f1": True, "log_loss": False}


@dataclass(frozen=True)
class GoldenSet:
    """A model's fixed test set: one dataset snapshot, named by dataset and version hash, pinned by md5."""

    dataset_id: str
    version_hash: str
    snapshot_md5: str
    dataset_name: str | None = None
    rows: int | None = None

    def to_tag(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "version_hash": self.version_hash, "snapshot_md5": self.snapshot_md5,
                "dataset_name": self.dataset_name, "rows": self.rows}

    @classmethod
    def from_tag(cls, value: dict[str, Any]) -> "GoldenSet":
        return cls(str(value["dataset_id"]), str(value["version_hash"]), str(value["snapshot_md5"]),
                   value.get("dataset_name"), value.get("rows"))


@dataclass
class Evaluation:
    """One version evaluated on one snapshot: an MLflow run of the `miniautoml-evaluations` experiment."""

    run_id: str
    model_name: str
    model_version: str
    model_run_id: str | None
    dataset_id: str
    version_hash: str
    snapshot_md5: str
    metrics: dict[str, float]
    rows: int  # evaluated: the snapshot's rows minus the overlap
    overlap_rows: int  # rows whose text is also in the version's training snapshot, left out
    training_snapshot: str | None  # md5 of the version's training snapshot; None when unknown
    cached: bool = False
    started_at: str | None = None


@dataclass(frozen=True)
class GateRule:
    """What a candidate must do to take an alias: meet each threshold, and be no worse than the
    holder on `metric` by more than `-min_delta` (i.e. candidate >= holder + min_delta when
    greater is better)."""

    metric: str = "accuracy"
    min_delta: float = 0.0
    thresholds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Bound:
    """One check in MLflow's terms (a `MetricThreshold`): an absolute `threshold` on the candidate,
    or a `min_absolute_change` over the baseline; `greater_is_better` orients both."""

    metric: str
    greater_is_better: bool
    threshold: float | None = None
    min_absolute_change: float | None = None


@dataclass
class Check:
    check: str  # e.g. "accuracy >= 0.85", "accuracy >= holder v1 + 0.0"
    metric: str
    passed: bool
    message: str | None = None  # MLflow's validation message when it failed


@dataclass
class GateSide:
    version: str
    evaluation_run_id: str
    metrics: dict[str, float]


@dataclass
class GateDecision:
    outcome: str  # passed | failed | forced
    alias: str
    rule: GateRule
    candidate: GateSide
    baseline: GateSide | None  # the version holding the alias before; None when nobody did
    checks: list[Check]
    golden: GoldenSet | None = None
    decided_at: str | None = None

    @property
    def failed_checks(self) -> list[str]:
        return [c.check for c in self.checks if not c.passed]


@dataclass
class PromotionResult:
    """What `models promote` prints: the gate (`none` without a golden set), the decision, the version."""

    name: str
    version: str
    alias: str
    gate: str  # none | passed | failed | forced
    moved: bool
    holder: str | None  # the version that held the alias before
    decision: GateDecision | None
    failed: list[str]
    model: Any = None  # the candidate's ModelVersionInfo after the decision
