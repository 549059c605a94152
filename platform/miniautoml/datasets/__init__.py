"""Dataset management: immutable commits, version hashes and snapshots over git + DVC."""

from miniautoml.datasets.records import (
    CommitInfo,
    DatasetSummary,
    DatasetType,
    SnapshotVersion,
    VersionedSnapshot,
)
from miniautoml.datasets.service import (
    create_dataset,
    delete_dataset,
    ensure_snapshot,
    fetch_snapshot,
    list_datasets,
    prepare_snapshot,
    show_dataset,
    update_dataset,
)
from miniautoml.datasets.version_hash import VersionHash, parse as parse_version_hash

__all__ = [
    "CommitInfo",
    "DatasetSummary",
    "DatasetType",
    "SnapshotVersion",
    "VersionHash",
    "VersionedSnapshot",
    "create_dataset",
    "delete_dataset",
    "ensure_snapshot",
    "fetch_snapshot",
    "list_datasets",
    "parse_version_hash",
    "prepare_snapshot",
    "show_dataset",
    "update_dataset",
]
