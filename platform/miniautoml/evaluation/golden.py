"""Golden sets: the one snapshot a model's versions are compared on, kept as a registered-model tag.

A golden set names a dataset and a version hash (so: immutable commits) and pins the snapshot's
DVC md5; an evaluation refuses a snapshot whose md5 no longer matches what was pinned.
"""

from __future__ import annotations

import json

from miniautoml.adapters import mlflow_evaluation as ev
from miniautoml.config import Settings
from miniautoml.errors import UserInputError, shown
from miniautoml.evaluation.data import text_intent_snapshot
from miniautoml.evaluation.records import GoldenSet

GOLDEN_TAG = "miniautoml.golden"


def set_golden(settings: Settings, name: str, dataset: str, version_hash: str) -> GoldenSet:
    """Record the snapshot `dataset`@`version_hash` as model `name`'s golden set."""
    ev.model_tags(settings, name)  # the model exists, before the snapshot is fetched
    golden = snapshot_set(settings, dataset, version_hash)
    ev.set_model_tag(settings, name, GOLDEN_TAG, ev.json_tag(golden.to_tag()))
    return golden


def snapshot_set(settings: Settings, dataset: str, version_hash: str) -> GoldenSet:
    """The evaluation set of one dataset version (fetched, so its md5 and rows are known)."""
    dataset_id, dataset_name, snap = text_intent_snapshot(settings, dataset, version_hash)
    return GoldenSet(dataset_id, snap.version_hash, snap.dvc_md5, dataset_name, snap.statistics.get("numExamples"))


def get_golden(settings: Settings, name: str) -> GoldenSet | None:
    value = ev.model_tags(settings, name).get(GOLDEN_TAG)
    if not value:
        return None
    try:
        return GoldenSet.from_tag(json.loads(value))
    except (ValueError, KeyError, TypeError):
        raise UserInputError(f"model {shown(name)}: its tag {GOLDEN_TAG} is not a golden set ({shown(value)}); "
                             "set it again with `models golden`") from None


def resolve(settings: Settings, name: str, dataset: str | None, version_hash: str | None) -> GoldenSet | None:
    """The set to evaluate on: `--dataset/--version-hash` when given, else the model's golden set."""
    if bool(dataset) != bool(version_hash):
        raise UserInputError("--dataset and --version-hash go together: give both, or neither for the golden set")
    if dataset and version_hash:
        return snapshot_set(settings, dataset, version_hash)
    return get_golden(settings, name)
