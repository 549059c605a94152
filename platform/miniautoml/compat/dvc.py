"""Patches of DVC internals: a directory tracked in DVC 3's own layout without a Repo, and
`.dvc/config.local` written privately. Pinned on DVC 3.67 (tests/test_compat_dvc.py); outside it
adapters.dvc takes DVC's public route.

**Commit layout.** A DVC Repo loads and validates every `.dvc` file of the workspace and `dvc push`
asks the remote about each object: a fixed cost that grew with the number of dataset commits
(0.1-0.3 s each). `track()` does `dvc add`'s work itself: each file's object and the `.dir`
listing (serialised by DVC's own `Tree`) in the cache as `files/md5/ab/cdef…`, read-only; the
caller uploads the same objects under the same keys; `write_dvc_file()` then writes the
`.gitignore` entry and the `.dvc` file (DVC's YAML dumper), so DVC's status, pull and checkout read
them as their own. The pin test compares all of it with a real `dvc add` + `dvc push`.

**Local config.** DVC's `Config.edit` rewrites `.dvc/config.local` (the S3 keys) in place, opened
0644; `write_local_config()` serialises it as DVC does (`_pack_named`, `Config._save_paths`) and
writes it atomically, 0600 from the first byte on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from miniautoml.compat import guard
from miniautoml.files import atomic_write_text

PINNED = ("dvc>=3.67,<3.68", "dvc-data>=3.18,<3.19")
COMMIT_LAYOUT = guard("DVC commit layout", *PINNED,
                      unpatched="commits go through a DVC Repo (`dvc add`, `dvc push`: slower)")
LOCAL_CONFIG = guard("DVC private local config", *PINNED,
                     unpatched="DVC writes .dvc/config.local in place (kept 0600)")
OBJECT_MODE = 0o444  # cache and remote objects are immutable, as DVC keeps them


def object_key(md5: str) -> str:
    """Where DVC 3 keeps an object under a cache or remote root: `files/md5/ab/cdef…`."""
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def store_object(source: Path | bytes, dest: Path) -> None:
    """Copy `source` (a file, or bytes) to `dest`, read-only as DVC keeps objects, skipped if
    present (objects are named by their content); through a temporary file and a rename, so a
    crash never leaves a truncated object."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        if isinstance(source, bytes):
            tmp.write_bytes(source)
        else:
            shutil.copyfile(source, tmp)
        os.chmod(tmp, OBJECT_MODE)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Tracked:
    """A directory as `dvc add` tracks it: its `….dir` md5, and md5 -> a file with those bytes
    for each object to push (the files, and the listing in the cache)."""

    directory: Path
    md5: str
    size: int
    nfiles: int
    objects: dict[str, Path]

    @property
    def dvc_file(self) -> Path:
        return self.directory.with_name(self.directory.name + ".dvc")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def track(directory: Path, cache: Path) -> Tracked:
    """`dvc add <directory>`'s cache half: each file's object and the `.dir` listing in `cache`."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    tree, objects, size = Tree(), {}, 0
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for path in files:
        md5 = _md5(path)
        objects[md5] = path
        size += path.stat().st_size
        tree.add(path.relative_to(directory).parts, None, HashInfo("md5", md5))
    listing = tree.as_bytes()
    dir_md5 = hashlib.md5(listing).hexdigest() + ".dir"
    for md5, path in objects.items():
        store_object(path, cache / object_key(md5))
    store_object(listing, cache / object_key(dir_md5))
    return Tracked(directory, dir_md5, size, len(files), {**objects, dir_md5: cache / object_key(dir_md5)})


def write_dvc_file(tracked: Tracked) -> None:
    """`dvc add`'s last half: the `/<name>` line in the parent's .gitignore, then the `.dvc` file
    (last: until it exists the directory does not count as tracked)."""
    from dvc.utils.serialize import dumps_yaml

    directory = tracked.directory
    gitignore = directory.parent / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    if f"/{directory.name}" not in lines:
        atomic_write_text(gitignore, "".join(f"{line}\n" for line in [*lines, f"/{directory.name}"]))
    out = {"md5": tracked.md5, "size": tracked.size, "nfiles": tracked.nfiles, "hash": "md5", "path": directory.name}
    atomic_write_text(tracked.dvc_file, dumps_yaml({"outs": [out]}))


def write_local_config(path: Path, conf: dict, mode: int) -> None:
    """`conf` (a DVC config level, as `Config.read` gives it) serialised as DVC's `Config` does,
    written atomically to `path` with `mode`."""
    from configobj import ConfigObj
    from dvc.config import Config, _pack_named

    lines = ConfigObj(_pack_named(Config._save_paths(conf, str(path)))).write()
    atomic_write_text(path, "".join(f"{line}\n" for line in lines), mode=mode)
