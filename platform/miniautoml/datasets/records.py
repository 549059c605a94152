"""The book's dataset records, as JSON-ready dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class DatasetType(str, Enum):
    TEXT_INTENT = "TEXT_INTENT"
    GENERIC = "GENERIC"


@dataclass
class CommitInfo:
    dataset_id: str
    commit_id: str
    created_at: str
    commit_message: str
    tags: dict[str, str]
    path: str  # workspace-relative directory of the commit's files (DVC-tracked)
    statistics: dict
    dvc_md5: str  # DVC's content hash of `path`: lineage points at exact bytes


@dataclass
class DatasetSummary:
    dataset_id: str
    name: str
    description: str
    dataset_type: str
    last_updated_at: str
    commits: list[CommitInfo] = field(default_factory=list)


@dataclass
class SnapshotVersion:
    """A named selection of commits: what `prepare` returns."""

    dataset_id: str
    name: str
    description: str
    dataset_type: str
    last_updated_at: str
    version_hash: str
    commits: list[CommitInfo] = field(default_factory=list)


@dataclass
class VersionedSnapshot:
    """The merged training data of a selection, materialised on disk: what `fetch` returns."""

    dataset_id: str
    version_hash: str
    state: str  # RUNNING | READY | FAILED (book); builds are synchronous, so READY when returned
    parts: list[str]
    root: str
    statistics: dict
    dvc_md5: str
    source: str  # where the bytes live on the DVC remote
