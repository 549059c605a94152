"""The rows an evaluation scores: a snapshot's `text,label` rows minus those the version trained on.

The label of a row is its first (as the trainer reads multi-label rows); a row overlaps when its
text (stripped, as the dataset service stores it) also occurs in the version's training snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from miniautoml import datasets
from miniautoml.config import Settings
from miniautoml.datasets.formats import EXAMPLES, iter_intents
from miniautoml.datasets.records import DatasetType, VersionedSnapshot
from miniautoml.errors import UserInputError, shown


@dataclass
class Rows:
    texts: list[str]
    labels: list[str]
    overlap_rows: int = 0


def text_intent_snapshot(settings: Settings, dataset: str, version_hash: str) -> tuple[str, str, VersionedSnapshot]:
    """(dataset id, name, snapshot on disk) of a TEXT_INTENT dataset version; others are refused."""
    summary = datasets.show_dataset(settings, dataset)
    if summary.dataset_type != DatasetType.TEXT_INTENT.value:
        raise UserInputError(
            f"dataset {shown(dataset)} is {summary.dataset_type}: an evaluation set must be a TEXT_INTENT dataset"
        )
    return summary.dataset_id, summary.name, datasets.fetch_snapshot(settings, summary.dataset_id, version_hash)


def snapshot_rows(snapshot: VersionedSnapshot) -> Rows:
    texts, labels = [], []
    for example in iter_intents(Path(snapshot.root) / EXAMPLES):
        texts.append(example.text)
        labels.append(example.labels[0])
    return Rows(texts, labels)


def without(rows: Rows, seen: set[str]) -> Rows:
    """`rows` minus those whose text is in `seen`; the count left out is `overlap_rows`."""
    keep = [i for i, text in enumerate(rows.texts) if text not in seen]
    return Rows([rows.texts[i] for i in keep], [rows.labels[i] for i in keep], len(rows.texts) - len(keep))
