"""Evaluating a registered version on a snapshot: one MLflow evaluation run, cached.

The version's answers come from the predictor serving uses (`serving.server.predictors`: our models'
`predict_texts`, any other pyfunc model through its adapter), so the gate measures what the service
would answer. Rows whose text the version trained on are left out and counted. The same version on
the same snapshot (by md5) is evaluated once: later calls return that run (`cached: true`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from miniautoml import registry, runs
from miniautoml.adapters import mlflow_evaluation as ev
from miniautoml.config import Settings
from miniautoml.errors import NotFoundError, UserInputError, shown
from miniautoml.evaluation import data, golden as golden_sets
from miniautoml.evaluation.records import EXPERIMENT, METRICS, Evaluation, GoldenSet
from miniautoml.locks import file_lock
from miniautoml.model_ref import ModelRef
from miniautoml.serving.server.predictors import predictor_for

if TYPE_CHECKING:
    import pandas as pd

    from miniautoml.registry import ModelVersionInfo

Progress = Callable[[str], None]
BATCH = 2048  # texts per predict call
ALL_LABELS = 1 << 30  # top_k: every label's score, for the true label's probability

# Tags of an evaluation run (the dataset's are the names training runs use for lineage).
MODEL_NAME, MODEL_VERSION, MODEL_RUN = "miniautoml.model_name", "miniautoml.model_version", "miniautoml.model_run_id"
ROWS, OVERLAP, TRAINING_MD5 = "miniautoml.rows", "miniautoml.overlap_rows", "miniautoml.training_snapshot_md5"


def _noop(_: str) -> None:
    pass


def _iso(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds") if ms else None


def _record(run: ev.EvaluationRun, cached: bool) -> Evaluation:
    tags = run.tags
    return Evaluation(
        run_id=run.run_id, model_name=tags.get(MODEL_NAME, ""), model_version=tags.get(MODEL_VERSION, ""),
        model_run_id=tags.get(MODEL_RUN) or None, dataset_id=tags.get("dataset_id", ""),
        version_hash=tags.get("version_hash", ""), snapshot_md5=tags.get("snapshot_md5", ""),
        metrics={k: run.metrics[k] for k in METRICS if k in run.metrics},
        rows=int(tags.get(ROWS, 0)), overlap_rows=int(tags.get(OVERLAP, 0)),
        training_snapshot=tags.get(TRAINING_MD5) or None, cached=cached, started_at=_iso(run.start_time),
    )


def _training_texts(settings: Settings, info: "ModelVersionInfo", progress: Progress) -> tuple[str | None, set[str]]:
    """(md5, texts) of the snapshot the version trained on; (None, empty) when its run names none
    (a foreign model, or one trained on CSV files outside the dataset service)."""
    tags: dict[str, str] = {}
    if info.run_id:
        try:
            tags = runs.get_run(settings, info.run_id).data.tags
        except NotFoundError:
            tags = {}
    dataset_id = tags.get("dataset_id") or info.dataset_id
    version_hash = tags.get("version_hash") or info.version_hash
    if not dataset_id or not version_hash:
        return None, set()
    progress(f"reading the training snapshot {dataset_id}@{version_hash} of version {info.version}")
    _, _, snap = data.text_intent_snapshot(settings, dataset_id, version_hash)
    return snap.dvc_md5, set(data.snapshot_rows(snap).texts)


def _frame(predictor: Any, rows: data.Rows, known: list[str] | None) -> "pd.DataFrame":
    """The static evaluation dataset: text, label, the version's prediction (and the true label's
    probability when the model gives scores)."""
    import pandas as pd

    answers: list[dict[str, Any]] = []
    for start in range(0, len(rows.texts), BATCH):
        answers.extend(predictor.predict_texts(rows.texts[start:start + BATCH], top_k=ALL_LABELS))
    predicted = [a["result"] for a in answers]
    if known is None and not set(predicted) & set(rows.labels):
        raise UserInputError(_no_shared_labels(rows, sorted(set(predicted))))
    frame = pd.DataFrame({"text": rows.texts, "label": rows.labels, "prediction": predicted})
    if answers and all(a.get("scores") for a in answers):
        frame["target_score"] = [float(a["scores"].get(y, 0.0)) for a, y in zip(answers, rows.labels)]
    return frame


def _no_shared_labels(rows: data.Rows, model_labels: list[str]) -> str:
    wanted = sorted(set(rows.labels))
    return (f"the evaluation set's labels ({', '.join(wanted[:5])}{', ...' if len(wanted) > 5 else ''}) share "
            f"nothing with the model's ({', '.join(model_labels[:5])}{', ...' if len(model_labels) > 5 else ''})")


def _lock(settings: Settings, name: str, version: str, md5: str) -> Any:
    key = hashlib.sha1(f"{name}\0{version}\0{md5}".encode()).hexdigest()[:20]
    return file_lock(settings.state_dir / "locks" / f"evaluation-{key}.lock")


def evaluate(settings: Settings, name: str, version: str, target: GoldenSet, progress: Progress = _noop) -> Evaluation:
    """Version `version` (number or alias) of model `name` evaluated on the snapshot `target`."""
    info = registry.get_version(settings, ModelRef.in_model(name, version))
    cache_tags = {MODEL_NAME: info.name, MODEL_VERSION: info.version, "snapshot_md5": target.snapshot_md5}
    with _lock(settings, info.name, info.version, target.snapshot_md5):
        done = ev.find_runs(settings, EXPERIMENT, cache_tags, status="FINISHED")
        if done:
            return _record(done[0], cached=True)
        dataset_id, dataset_name, snap = data.text_intent_snapshot(settings, target.dataset_id, target.version_hash)
        if snap.dvc_md5 != target.snapshot_md5:
            raise UserInputError(
                f"snapshot {dataset_id}@{target.version_hash} is now md5 {snap.dvc_md5}, not the pinned "
                f"{target.snapshot_md5}: set the golden set again (`models golden`)"
            )
        training_md5, seen = _training_texts(settings, info, progress)
        rows = data.without(data.snapshot_rows(snap), seen)
        if not rows.texts:
            raise UserInputError(
                f"evaluation set {dataset_id}@{target.version_hash}: all {rows.overlap_rows} rows also occur in the "
                f"training snapshot of {info.name} version {info.version}; nothing left to evaluate"
            )
        progress(f"loading {info.name} version {info.version}")
        model = ev.load_model(settings, f"models:/{info.name}/{info.version}",
                              f"model {info.name!r} version {info.version} has no loadable model")
        known = ev.model_labels(model)
        if known is not None and not set(known) & set(rows.labels):
            raise UserInputError(_no_shared_labels(rows, known))
        predictor = predictor_for(model, info.run_id or "")
        tags = {
            **cache_tags, MODEL_RUN: info.run_id or "", "dataset_id": dataset_id, "dataset_name": dataset_name,
            "version_hash": target.version_hash, ROWS: str(len(rows.texts)), OVERLAP: str(rows.overlap_rows),
            TRAINING_MD5: training_md5 or "", "mlflow.runName": f"eval {info.name} v{info.version} on {dataset_id}@{target.version_hash}",
        }
        description = (
            f"Evaluation of [{info.name} version {info.version}](#/models/{info.name}/versions/{info.version}) "
            f"(run {info.run_id}) on dataset **{dataset_name}** (id {dataset_id}) `{target.version_hash}`, "
            f"snapshot md5 `{target.snapshot_md5}`: {len(rows.texts)} rows, {rows.overlap_rows} left out "
            "because the version trained on them."
        )
        progress(f"evaluating {info.name} version {info.version} on {len(rows.texts)} rows ({rows.overlap_rows} overlap)")
        run = ev.run_evaluation(
            settings, EXPERIMENT, tags=tags, description=description, predict=lambda: _frame(predictor, rows, known),
            dataset_name=f"{dataset_id}@{target.version_hash}", dataset_source=snap.source, digest=target.snapshot_md5,
            model_id=ev.version_model_id(settings, info.name, info.version),
        )
        return _record(run, cached=False)


def evaluate_version(
    settings: Settings, name: str, version: str, dataset: str | None = None, version_hash: str | None = None,
    progress: Progress = _noop,
) -> Evaluation:
    """`models evaluate`: on `dataset`@`version_hash`, else on the model's golden set."""
    info = registry.get_version(settings, ModelRef.in_model(name, version))
    target = golden_sets.resolve(settings, info.name, dataset, version_hash)
    if target is None:
        raise UserInputError(
            f"model {shown(info.name)} has no golden set: give --dataset and --version-hash, "
            "or set one with `models golden NAME --dataset D --version-hash H`"
        )
    return evaluate(settings, info.name, info.version, target, progress)


def evaluations_of(settings: Settings, name: str, version: str) -> list[dict[str, Any]]:
    """Every evaluation run of a version (newest first), failed ones with their reason."""
    found = []
    for run in ev.find_runs(settings, EXPERIMENT, {MODEL_NAME: name, MODEL_VERSION: version}):
        record = _record(run, cached=False)
        item: dict[str, Any] = {"status": run.status, **{k: v for k, v in vars(record).items() if k != "cached"}}
        if run.status == "FAILED":
            item["error"] = run.tags.get(ev.ERROR_TAG)
        found.append(item)
    return found
