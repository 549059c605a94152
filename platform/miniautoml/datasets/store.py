"""Where dataset metadata and bytes sit in a workspace, and how a broken mutation is undone.

    data/datasets/index.json                 next dataset id (ids are never reused)
    data/datasets/<id>/dataset.json          the dataset's metadata, commits and snapshots (git)
    data/datasets/<id>/commits/<c>/          a commit's files (DVC; <c>.dvc in git)
    data/datasets/<id>/snapshots/<hash>/     a prepared selection, merged (DVC; .dvc in git)
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

from miniautoml.adapters import git
from miniautoml.config import Settings
from miniautoml.errors import NotFoundError, UserInputError, shown
from miniautoml.files import atomic_write_json

DATASETS_DIR = "data/datasets"
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")


def root(settings: Settings) -> Path:
    return settings.workspace / DATASETS_DIR


def dataset_dir(settings: Settings, dataset_id: str) -> Path:
    return root(settings) / dataset_id


def write_json(path: Path, obj: object) -> None:
    """Atomic write: a crash leaves the old file or the new one, never half of one."""
    atomic_write_json(path, obj)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def all_metadata(settings: Settings) -> list[dict]:
    base = root(settings)
    if not base.is_dir():
        return []
    metas = [read_json(p / "dataset.json") for p in base.iterdir() if (p / "dataset.json").is_file()]
    return sorted(metas, key=lambda m: int(m["dataset_id"]))


def resolve(settings: Settings, dataset: str) -> dict:
    """A dataset's metadata by id ("1") or name; unknown -> NotFoundError."""
    dataset = str(dataset).strip()
    if dataset.isdigit() and (dataset_dir(settings, dataset) / "dataset.json").is_file():
        return read_json(dataset_dir(settings, dataset) / "dataset.json")
    for meta in all_metadata(settings):
        if meta["name"] == dataset:
            return meta
    raise NotFoundError(
        f"dataset {shown(dataset)} not found in workspace {settings.workspace}; create it first: "
        f"miniautoml dataset create {'NAME' if dataset.isdigit() else shlex.quote(dataset)} --type TEXT_INTENT --file FILE.csv"
    )


def check_name(settings: Settings, name: str) -> None:
    if not NAME_RE.match(name):
        raise UserInputError(
            f"dataset name {shown(name)}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter"
        )
    if any(meta["name"] == name for meta in all_metadata(settings)):
        raise UserInputError(f"dataset name {shown(name)}: a dataset with this name already exists")


def next_id(settings: Settings) -> str:
    index = root(settings) / "index.json"
    known = [int(m["dataset_id"]) for m in all_metadata(settings)]
    stored = read_json(index)["next_id"] if index.is_file() else 1
    return str(max([stored, *(k + 1 for k in known)]))


def save(settings: Settings, meta: dict) -> None:
    write_json(dataset_dir(settings, meta["dataset_id"]) / "dataset.json", meta)
    write_json(root(settings) / "index.json", {"next_id": int(next_id(settings))})


def _complete(ds: Path) -> bool:
    """Saved metadata whose every commit and snapshot is DVC-tracked: its bytes were pushed,
    because metadata is saved only after the push succeeded."""
    try:
        meta = read_json(ds / "dataset.json")
    except (OSError, ValueError):
        return False
    return all((ds / "commits" / f"{c['commit_id']}.dvc").is_file() for c in meta["commits"]) and all(
        (ds / "snapshots" / f"{s['dirname']}.dvc").is_file() for s in meta.get("snapshots", {}).values()
    )


def repair(settings: Settings) -> None:
    """Finish or undo whatever an interrupted mutation left.

    A mutation killed after saving its metadata only missed its git commit: that is made now.
    Anything earlier is undone: tracked files go back to HEAD, and commit and snapshot directories
    that the metadata does not list are removed (their bytes may stay in the DVC cache, harmlessly).
    """
    base = root(settings)
    if not base.is_dir():
        return
    ws = settings.workspace
    if git.dirty(ws, [DATASETS_DIR]):
        done = [ds for ds in base.iterdir() if ds.is_dir() and git.dirty(ws, [str(ds.relative_to(ws) / "dataset.json")]) and _complete(ds)]
        if done:
            paths = [str(ds.relative_to(ws)) for ds in done] + [f"{DATASETS_DIR}/index.json"]
            git.commit(ws, paths, "datasets: record a change interrupted before its git commit")
        git.restore(ws, [DATASETS_DIR])
    for ds in base.iterdir():
        if not ds.is_dir():
            continue
        meta_path = ds / "dataset.json"
        if not meta_path.is_file():
            shutil.rmtree(ds)
            continue
        meta = read_json(meta_path)
        keep = {
            "commits": {c["commit_id"] for c in meta["commits"]},
            "snapshots": {s["dirname"] for s in meta.get("snapshots", {}).values()},
        }
        for kind, names in keep.items():
            folder = ds / kind
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                stem = entry.name.removesuffix(".dvc")
                if entry.name != ".gitignore" and stem not in names:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
