"""MLflow's evaluation and validation APIs for the evaluation service (and the registry tags it keeps).

`run_evaluation` logs one evaluation run: `mlflow.models.evaluate` on a static dataset (the
model's answers are a column of it, computed inside the run by the caller's `predict`), with our
metrics as `extra_metrics` and a per-label table and a confusion matrix as `custom_artifacts`.
MLflow's built-in classifier evaluator is not used: it draws every cell of the confusion matrix as
text (22,500 for CLINC150's 150 labels: minutes per plot). A run whose `predict` or evaluation
fails ends FAILED with the reason as a tag. `validate` is one check of the gate in MLflow's terms
(`MetricThreshold` + `mlflow.validate_evaluation_results`).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from miniautoml.adapters import mlflow as mlflow_adapter
from miniautoml.config import Settings
from miniautoml.errors import MiniAutoMLError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

ERROR_TAG = "miniautoml.error"
TICK_LABELS_UP_TO = 40  # a confusion matrix with more labels is drawn without their names (its CSV has them)


class Bound(Protocol):
    """One check in MLflow's terms (`evaluation.records.Bound`)."""

    metric: str
    greater_is_better: bool
    threshold: float | None
    min_absolute_change: float | None


@dataclass
class EvaluationRun:
    run_id: str
    status: str
    tags: dict[str, str]
    metrics: dict[str, float]
    start_time: int | None


def _run_record(run: Any) -> EvaluationRun:
    return EvaluationRun(run.info.run_id, run.info.status, dict(run.data.tags), dict(run.data.metrics), run.info.start_time)


def find_runs(settings: Settings, experiment: str, tags: Mapping[str, str], status: str | None = None) -> list[EvaluationRun]:
    """Runs of `experiment` carrying every tag (newest first), optionally only those in `status`."""
    client = mlflow_adapter.client(settings)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    clauses = [f"tags.`{k}` = '{v}'" for k, v in tags.items() if "'" not in str(v)]
    if status:
        clauses.append(f"attributes.status = '{status}'")
    runs = client.search_runs([found.experiment_id], " and ".join(clauses), order_by=["attributes.start_time DESC"],
                              max_results=200)
    return [_run_record(r) for r in runs]


def load_model(settings: Settings, model_uri: str, missing: str) -> Any:
    """The `mlflow.pyfunc` model at `model_uri`, of the workspace's store."""
    mlflow_adapter.configure(settings)
    try:
        return mlflow_adapter.load_pyfunc(model_uri, missing)
    except OSError as exc:  # artifact files missing on disk
        raise NotFoundError(f"{missing} ({exc})") from None


def model_labels(model: Any) -> list[str] | None:
    """The labels a loaded pyfunc model can answer, when it says: ours (`labels`), sklearn's `classes_`."""
    for get in (model.unwrap_python_model, model.get_raw_model):
        try:
            inner = get()
        except Exception:  # not that kind of model: MLflow raises
            continue
        labels = getattr(inner, "labels", None)
        if labels is None:
            labels = getattr(inner, "classes_", None)
        if labels is not None:
            return [str(label) for label in list(labels)]
    return None


def version_model_id(settings: Settings, name: str, version: str) -> str | None:
    """The MLflow 3 logged model behind a registry version (evaluation metrics link to it): its
    `model_id`, else the id its source names (`models:/m-...`, how our trainer registers)."""
    found = mlflow_adapter.client(settings).get_model_version(name, version)
    source = found.source or ""
    return getattr(found, "model_id", None) or (source.removeprefix("models:/") if source.startswith("models:/m-") else None)


def model_tags(settings: Settings, name: str) -> dict[str, str]:
    with mlflow_adapter.errors(not_found=f"model {name!r} not found in the registry"):
        return dict(mlflow_adapter.client(settings).get_registered_model(name).tags or {})


def set_model_tag(settings: Settings, name: str, key: str, value: str) -> None:
    with mlflow_adapter.errors(not_found=f"model {name!r} not found in the registry"):
        mlflow_adapter.client(settings).set_registered_model_tag(name, key, value)


def set_version_tags(settings: Settings, name: str, version: str, tags: Mapping[str, str]) -> None:
    client = mlflow_adapter.client(settings)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def validate(bound: Bound, candidate: Mapping[str, float], baseline: Mapping[str, float] | None) -> str | None:
    """One gate check by MLflow: None when it passes, else MLflow's reason."""
    import mlflow
    from mlflow.models import EvaluationResult, MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    threshold = MetricThreshold(threshold=bound.threshold, min_absolute_change=bound.min_absolute_change,
                                greater_is_better=bound.greater_is_better)
    base = EvaluationResult(metrics=dict(baseline), artifacts={}) if baseline is not None else None
    logging.getLogger("mlflow.models.evaluation").setLevel(logging.WARNING)
    try:
        mlflow.validate_evaluation_results({bound.metric: threshold}, EvaluationResult(metrics=dict(candidate), artifacts={}), base)
    except ModelValidationFailedException as exc:
        return " ".join(str(exc.message).split())
    return None


def _metric_value(name: str, value: float) -> Any:
    from mlflow.metrics import MetricValue

    return MetricValue(aggregate_results={name: float(value)})


def _extra_metrics(with_scores: bool) -> list[Any]:
    """Our metrics (names as in `records.METRICS`) for `mlflow.models.evaluate`."""
    import numpy as np
    from mlflow.models import make_metric
    from sklearn import metrics as skm

    def accuracy(predictions, targets):
        return _metric_value("accuracy", skm.accuracy_score(targets, predictions))

    def macro_f1(predictions, targets):
        return _metric_value("macro_f1", skm.f1_score(targets, predictions, average="macro", zero_division=0))

    def weighted_f1(predictions, targets):
        return _metric_value("weighted_f1", skm.f1_score(targets, predictions, average="weighted", zero_division=0))

    def log_loss(target_score):
        # -mean log p(true label); a label the model does not know has p = 0, clipped as sklearn does.
        p = np.clip(np.asarray(target_score, dtype=float), np.finfo(float).eps, 1.0)
        return _metric_value("log_loss", float(-np.log(p).mean()))

    found = [make_metric(eval_fn=accuracy, greater_is_better=True, name="accuracy"),
             make_metric(eval_fn=macro_f1, greater_is_better=True, name="macro_f1"),
             make_metric(eval_fn=weighted_f1, greater_is_better=True, name="weighted_f1")]
    if with_scores:
        found.append(make_metric(eval_fn=log_loss, greater_is_better=False, name="log_loss"))
    return found


def _per_label(eval_df: "pd.DataFrame", _metrics: Any, _dir: str) -> dict[str, Any]:
    import pandas as pd
    from sklearn import metrics as skm

    y, p = eval_df["target"].astype(str), eval_df["prediction"].astype(str)
    labels = sorted(set(y) | set(p))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    table = pd.DataFrame({"label": labels, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return {"per_label_metrics": table}


def _confusion_matrix(eval_df: "pd.DataFrame", _metrics: Any, directory: str) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn import metrics as skm

    y, p = eval_df["target"].astype(str), eval_df["prediction"].astype(str)
    labels = sorted(set(y) | set(p))
    matrix = skm.confusion_matrix(y, p, labels=labels, normalize="true")
    named = len(labels) <= TICK_LABELS_UP_TO
    side = 4.0 + 0.25 * len(labels) if named else 8.0
    fig, ax = plt.subplots(figsize=(side, side), dpi=100)
    try:
        # nearest: no resampling pass over the image (antialiasing a 151x151 matrix took ~1.5 s)
        ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        if named:
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
            ax.set_yticks(range(len(labels)), labels, fontsize=8)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"confusion matrix (normalized by true label, {len(labels)} labels)")
        fig.tight_layout()
        path = os.path.join(directory, "confusion_matrix.png")
        fig.savefig(path)
    finally:
        plt.close(fig)
    return {"confusion_matrix": path}


def run_evaluation(
    settings: Settings,
    experiment: str,
    *,
    tags: Mapping[str, str],
    description: str,
    predict: Callable[[], "pd.DataFrame"],
    dataset_name: str,
    dataset_source: str,
    digest: str,
    model_id: str | None,
) -> EvaluationRun:
    """One evaluation run in `experiment`: `predict()` gives the frame (`text`, `label`, `prediction`, and
    `target_score` when the model gives scores); MLflow computes and logs the metrics and
    artifacts. Any failure ends the run FAILED with the reason and propagates."""
    import mlflow
    import mlflow.data
    import mlflow.models

    mlflow_adapter.configure(settings)
    for noisy in ("mlflow.models.evaluation", "mlflow.tracking.fluent"):  # INFO lines on stderr per evaluation
        logging.getLogger(noisy).setLevel(logging.WARNING)
    experiment_id = mlflow_adapter.ensure_experiment(settings, experiment)
    client = mlflow_adapter.client(settings)
    run = client.create_run(experiment_id, tags={**tags, "mlflow.note.content": description},
                            run_name=tags.get("mlflow.runName"))
    run_id = run.info.run_id
    try:
        frame = predict()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            dataset = mlflow.data.from_pandas(frame, source=_source(dataset_source), name=dataset_name, digest=digest,
                                              targets="label", predictions="prediction")
        with mlflow.start_run(run_id=run_id):
            result = mlflow.models.evaluate(
                data=dataset, model_type=None, model_id=model_id,
                extra_metrics=_extra_metrics("target_score" in frame.columns),
                custom_artifacts=[_per_label, _confusion_matrix],
                evaluator_config={"log_model_explainability": False},
            )
    except BaseException as exc:
        reason = str(exc) if isinstance(exc, MiniAutoMLError) else f"{type(exc).__name__}: {exc}"
        client.set_tag(run_id, ERROR_TAG, " ".join(reason.split())[:4000])
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    finished = _run_record(client.get_run(run_id))
    finished.metrics = {k: float(v) for k, v in result.metrics.items()}
    return finished


def _source(location: str) -> Any:
    """A dataset source MLflow resolves (a URI), else the location kept as a tag of a code source."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.exceptions import MlflowException

    try:
        return resolve_dataset_source(location)
    except MlflowException:
        return CodeDatasetSource(tags={"uri": location})


def json_tag(value: Any) -> str:
    """A tag value as compact JSON (MLflow keeps up to 5,000 characters of a version tag)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
