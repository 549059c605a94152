"""The trainer's data loader interface: a dataset version as files on local disk, and its lineage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from miniautoml.config import Settings


@dataclass(frozen=True)
class SnapshotFiles:
    """One dataset version, materialised: what the trainer reads and records as its lineage."""

    dataset_id: str  # the canonical id (a dataset name resolves to it)
    version_hash: str
    examples: Path  # headerless UTF-8 `text,label` rows, `"` quoting, several labels as `a;b`
    labels: Path | None  # a JSON list of the label names, if the snapshot has one
    source: str  # where the bytes live: the DVC remote's location
    md5: str  # DVC's md5 of the snapshot


@dataclass(frozen=True)
class Lineage:
    """What the dataset service says about a version beyond its files."""

    dataset_name: str
    commits: tuple[int, ...]  # the commit ids the version hash selects


def fetch_snapshot(settings: "Settings", dataset: str, version_hash: str) -> SnapshotFiles:
    """The version's files on local disk, pulled from the DVC remote if needed (UserInputError,
    NotFoundError for an unknown dataset or a bad hash)."""
    # Imported here: the dataset service is heavy (DVC) and CSV training does without it.
    from miniautoml.datasets import fetch_snapshot as fetch
    from miniautoml.datasets import parse_version_hash
    from miniautoml.datasets.formats import EXAMPLES, LABELS

    vhash = parse_version_hash(version_hash)  # the trainer's argument, parsed once here
    snap = fetch(settings, dataset, vhash)
    root = Path(snap.root)
    labels = root / LABELS
    return SnapshotFiles(
        dataset_id=str(snap.dataset_id or dataset),
        version_hash=vhash.text,
        examples=root / EXAMPLES,
        labels=labels if labels.is_file() else None,
        source=str(snap.source),
        md5=str(snap.dvc_md5),
    )


def lineage(settings: "Settings", dataset_id: str, version_hash: str) -> Lineage:
    """The dataset's name and the commits `version_hash` selects."""
    from miniautoml.datasets import parse_version_hash, show_dataset

    return Lineage(show_dataset(settings, dataset_id).name, parse_version_hash(version_hash).commits)
