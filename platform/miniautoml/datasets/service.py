"""Dataset management (the book's data-management service) over git + DVC.

Every mutation runs under the workspace lock, first repairs what an interrupted one left, and
ends in one git commit made only after the bytes reached the DVC remote.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from miniautoml.adapters import dvc, git, s3
from miniautoml.config import Settings
from miniautoml.datasets import formats, store
from miniautoml.datasets.records import (
    CommitInfo,
    DatasetSummary,
    DatasetType,
    SnapshotVersion,
    VersionedSnapshot,
)
from miniautoml.datasets.version_hash import VersionHash, parse
from miniautoml.errors import NotFoundError, UserInputError, shown
from miniautoml.faults import crash_point
from miniautoml.workspace import ensure_workspace, locked

Progress = Callable[[str], None]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _noop(_: str) -> None:
    pass


def _summary(meta: dict) -> DatasetSummary:
    return DatasetSummary(
        dataset_id=meta["dataset_id"],
        name=meta["name"],
        description=meta["description"],
        dataset_type=meta["dataset_type"],
        last_updated_at=meta["last_updated_at"],
        commits=[CommitInfo(**c) for c in meta["commits"]],
    )


def _as_paths(files: Path | str | list[Path | str]) -> list[Path]:
    if isinstance(files, (str, Path)):
        files = [files]
    return [Path(f).expanduser() for f in files]


def _track_and_push(settings: Settings, path: Path, progress: Progress) -> str:
    """DVC-track `path` and upload it; returns its DVC md5. Raises StorageError on outage."""
    crash_point("before-dvc-add")
    if settings.storage.is_s3:
        s3.ensure_bucket(settings.storage)
    progress(f"hashing {path.relative_to(settings.workspace)} and uploading it to the DVC remote")
    md5 = dvc.add_and_push(settings, path)
    crash_point("after-push")
    return md5


def _commit_git(settings: Settings, meta: dict, message: str) -> None:
    ds = store.dataset_dir(settings, meta["dataset_id"]).relative_to(settings.workspace)
    index = (store.root(settings) / "index.json").relative_to(settings.workspace)
    crash_point("before-git-commit")
    # `.dvc/config` too: where the remote is travels with the commits whose bytes it holds.
    git.commit(settings.workspace, [str(ds), str(index), ".dvc/config"], message)


def _add_commit(
    settings: Settings, meta: dict, files: list[Path], statistics: dict, message: str, tags: dict[str, str], progress: Progress
) -> None:
    """Append a commit of validated `files` to `meta` and persist it; on any failure, repair."""
    dtype = DatasetType(meta["dataset_type"])
    cid = str(len(meta["commits"]) + 1)
    cdir = store.dataset_dir(settings, meta["dataset_id"]) / "commits" / cid
    try:
        formats.write_commit(dtype, files, cdir)
        md5 = _track_and_push(settings, cdir, progress)
        now = _now()
        meta["commits"].append(
            CommitInfo(
                dataset_id=meta["dataset_id"],
                commit_id=cid,
                created_at=now,
                commit_message=message,
                tags=tags,
                path=str(cdir.relative_to(settings.workspace)),
                statistics=statistics,
                dvc_md5=md5,
            ).__dict__
        )
        meta["last_updated_at"] = now
        store.save(settings, meta)
        _commit_git(settings, meta, f"dataset {meta['dataset_id']} ({meta['name']}): commit {cid}: {message}")
    except BaseException:
        store.repair(settings)
        raise


def create_dataset(
    settings: Settings,
    name: str,
    dataset_type: str | DatasetType,
    files: Path | str | list[Path | str],
    description: str = "",
    tags: dict[str, str] | None = None,
    progress: Progress = _noop,
) -> DatasetSummary:
    """A new dataset whose commit 1 ("Initial commit") holds `files`."""
    dtype = formats.parse_type(dataset_type.value if isinstance(dataset_type, DatasetType) else dataset_type)
    paths = _as_paths(files)
    progress(f"validating {', '.join(map(str, paths))}")
    statistics = formats.validate_files(dtype, paths)  # fail before touching the workspace
    ensure_workspace(settings)
    with locked(settings):
        store.repair(settings)
        store.check_name(settings, name)
        now = _now()
        meta = {
            "dataset_id": store.next_id(settings),
            "name": name,
            "description": description,
            "dataset_type": dtype.value,
            "created_at": now,
            "last_updated_at": now,
            "commits": [],
            "snapshots": {},
        }
        _add_commit(settings, meta, paths, statistics, "Initial commit", tags or {}, progress)
        return _summary(meta)


def update_dataset(
    settings: Settings,
    dataset: str,
    files: Path | str | list[Path | str],
    message: str | None = None,
    tags: dict[str, str] | None = None,
    progress: Progress = _noop,
) -> DatasetSummary:
    """Append a commit holding `files` to an existing dataset."""
    paths = _as_paths(files)
    dtype = DatasetType(store.resolve(settings, dataset)["dataset_type"])
    progress(f"validating {', '.join(map(str, paths))}")
    statistics = formats.validate_files(dtype, paths)
    ensure_workspace(settings)
    with locked(settings):
        store.repair(settings)
        meta = store.resolve(settings, dataset)  # re-read: another update may have landed
        default = f"Commit {len(meta['commits']) + 1}"
        _add_commit(settings, meta, paths, statistics, message or default, tags or {}, progress)
        return _summary(meta)


def list_datasets(settings: Settings) -> list[DatasetSummary]:
    return [_summary(m) for m in store.all_metadata(settings)]


def show_dataset(settings: Settings, dataset: str) -> DatasetSummary:
    return _summary(store.resolve(settings, dataset))


def delete_dataset(settings: Settings, dataset: str) -> DatasetSummary:
    """Remove a dataset from the current state; git history and the DVC remote keep its data."""
    with locked(settings):
        store.repair(settings)
        meta = store.resolve(settings, dataset)
        ds = store.dataset_dir(settings, meta["dataset_id"])
        shutil.rmtree(ds)
        git.commit(
            settings.workspace,
            [str(ds.relative_to(settings.workspace))],
            f"dataset {meta['dataset_id']} ({meta['name']}): deleted",
        )
        return _summary(meta)


def _select(meta: dict, commit: str | int | None, tags: dict[str, str]) -> list[dict]:
    commits = meta["commits"]
    if commit is None or str(commit).strip() == "":
        last = len(commits)
    else:
        text = str(commit).strip()
        if not text.isdigit() or int(text) < 1:
            raise UserInputError(f"--commit {shown(commit)}: expected a commit id (1, 2, ...)")
        last = int(text)
        if last > len(commits):
            raise NotFoundError(f"dataset {meta['dataset_id']} has no commit {last} (it has {len(commits)})")
    selected = [c for c in commits[:last] if all(c["tags"].get(k) == v for k, v in tags.items())]
    if not selected:  # only a tag filter can empty the selection: every dataset has commit 1
        flags = " ".join(f"--tag {shown(f'{k}={v}')}" for k, v in tags.items())
        scope = f" up to --commit {last}" if last < len(commits) else ""
        raise UserInputError(
            f"{flags}: no commit of dataset {meta['dataset_id']} ({meta['name']}){scope} carries "
            f"{'this tag' if len(tags) == 1 else 'all these tags'}; nothing to prepare"
        )
    return selected


def _snapshot_version(meta: dict, vhash: VersionHash, selected: list[dict]) -> SnapshotVersion:
    return SnapshotVersion(
        dataset_id=meta["dataset_id"],
        name=meta["name"],
        description=meta["description"],
        dataset_type=meta["dataset_type"],
        last_updated_at=meta["last_updated_at"],
        version_hash=str(vhash),
        commits=[CommitInfo(**c) for c in selected],
    )


def _ensure_local(settings: Settings, dirs: list[Path], progress: Progress) -> None:
    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        ensure_workspace(settings)  # a fresh clone has no remote configured yet
        dvc.require_local_remote(settings)
        progress(f"downloading {len(missing)} item(s) from the DVC remote")
        with dvc.open_repo(settings) as repo:
            dvc.pull(repo, [d.with_name(d.name + ".dvc") for d in missing])


def _build_snapshot(settings: Settings, dataset: str, vhash: VersionHash, progress: Progress) -> dict:
    """Merge and store the snapshot of `vhash` unless it exists; returns its metadata."""
    ensure_workspace(settings)
    with locked(settings):
        store.repair(settings)
        meta = store.resolve(settings, dataset)
        if vhash.text in meta.get("snapshots", {}):
            return meta
        by_id = {int(c["commit_id"]): c for c in meta["commits"]}
        ids = vhash.commits
        for cid in ids:
            if cid not in by_id:
                raise NotFoundError(f"version hash {shown(vhash.text)} selects commit {cid}, which dataset {meta['dataset_id']} does not have")
        commits = [by_id[i] for i in ids]
        commit_dirs = [settings.workspace / c["path"] for c in commits]
        sdir = store.dataset_dir(settings, meta["dataset_id"]) / "snapshots" / vhash.dirname
        try:
            _ensure_local(settings, commit_dirs, progress)
            progress(f"merging {len(commits)} commit(s) into snapshot {vhash}")
            parts, statistics = formats.write_snapshot(
                DatasetType(meta["dataset_type"]),
                [(c["commit_id"], settings.workspace / c["path"], c["statistics"]) for c in commits],
                sdir,
            )
            md5 = _track_and_push(settings, sdir, progress)
            meta.setdefault("snapshots", {})[vhash.text] = {
                "version_hash": vhash.text,
                "commits": [c["commit_id"] for c in commits],
                "dirname": vhash.dirname,
                "path": str(sdir.relative_to(settings.workspace)),
                "parts": parts,
                "statistics": statistics,
                "dvc_md5": md5,
                "created_at": _now(),
            }
            store.save(settings, meta)
            _commit_git(settings, meta, f"dataset {meta['dataset_id']} ({meta['name']}): snapshot {vhash}")
        except BaseException:
            store.repair(settings)
            raise
        return meta


def prepare_snapshot(
    settings: Settings,
    dataset: str,
    commit: str | int | None = None,
    tags: dict[str, str] | None = None,
    progress: Progress = _noop,
) -> SnapshotVersion:
    """Select commits 1..`commit` carrying every tag, name the selection, build its snapshot."""
    meta = store.resolve(settings, dataset)
    selected = _select(meta, commit, tags or {})
    vhash = VersionHash.of(int(c["commit_id"]) for c in selected)
    if selected and vhash.text not in meta.get("snapshots", {}):
        meta = _build_snapshot(settings, dataset, vhash, progress)
    return _snapshot_version(meta, vhash, selected)


def ensure_snapshot(settings: Settings, dataset: str, version_hash: str, progress: Progress = _noop) -> None:
    """Build (and push) the snapshot `version_hash` names unless it exists: a node that trains on a
    copy of the workspace's git revision (jobs/shipping.py) then only downloads it."""
    vhash = parse(version_hash)
    if vhash.text not in store.resolve(settings, dataset).get("snapshots", {}):
        _build_snapshot(settings, dataset, vhash, progress)


def fetch_snapshot(
    settings: Settings, dataset: str, version_hash: str | VersionHash, progress: Progress = _noop
) -> VersionedSnapshot:
    """The snapshot named by `version_hash` (text, or parsed), on local disk (pulled from the
    remote if needed)."""
    vhash = version_hash if isinstance(version_hash, VersionHash) else parse(version_hash)
    meta = store.resolve(settings, dataset)
    if not vhash.commits:
        raise UserInputError(f"version hash {shown(vhash.text)} selects no commits: nothing to fetch")
    snap = meta.get("snapshots", {}).get(vhash.text)
    if snap is None:
        meta = _build_snapshot(settings, dataset, vhash, progress)
        snap = meta["snapshots"][vhash.text]
    sdir = settings.workspace / snap["path"]
    _ensure_local(settings, [sdir], progress)
    return VersionedSnapshot(
        dataset_id=meta["dataset_id"],
        version_hash=vhash.text,
        state="READY",
        parts=snap["parts"],
        root=str(sdir),
        statistics=snap["statistics"],
        dvc_md5=snap["dvc_md5"],
        source=dvc.remote_location(settings, snap["dvc_md5"]),
    )
