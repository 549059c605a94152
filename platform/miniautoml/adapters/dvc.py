"""DVC: tracks dataset commits and snapshots, moves their bytes to and from the remote."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from miniautoml.compat import dvc as compat_dvc
from miniautoml.config import (
    DVC_REMOTE,
    LOCAL_REMOTE_ENV,
    Settings,
    committed_remote,
    dvc_remote_url,
    owns_remote,
)
from miniautoml.errors import StorageError

if TYPE_CHECKING:
    from dvc.config import Config
    from dvc.repo import Repo

REMOTE = DVC_REMOTE
CACHE_TYPES = "reflink,hardlink,copy"
SMALL_OBJECT_BYTES = 1 << 20  # up to this size an object is uploaded without asking if it is there
LOCAL_CONFIG_MODE = 0o600  # `.dvc/config.local`: the S3 keys, readable by their owner only
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """DVC's hints ("To track the changes with git...") would corrupt our JSON on stdout."""
    logging.getLogger("dvc").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(sys.stderr):
        yield


@contextlib.contextmanager
def open_repo(settings: Settings) -> Iterator["Repo"]:
    from dvc.repo import Repo

    os.environ.update(settings.storage.s3_env())
    with _quiet():
        repo = Repo(str(settings.workspace))
        repo.scm_context.quiet = True
        try:
            yield repo
        finally:
            repo.close()


def init(settings: Settings) -> None:
    """Make the workspace a DVC repo (idempotent) with its site cache inside the workspace."""
    from dvc.repo import Repo

    if not (settings.workspace / ".dvc").is_dir():
        with _quiet():
            Repo.init(str(settings.workspace)).close()
    configure_remote(settings)


def configure_remote(settings: Settings) -> None:
    """Remote `storage`: S3 when an endpoint is set, else the embedded local directory.

    Where the remote is (url, S3 endpoint, region) goes to `.dvc/config`, committed with the
    workspace, so a git clone with access to the remote runs `dvc pull` as is; only the keys (and
    this machine's cache paths) go to `.dvc/config.local`, never committed. The embedded remote's
    url is its absolute path: a clone on this machine reads it, one elsewhere is told it is missing.
    """
    from dvc.config import Config

    storage = settings.storage
    secret: dict[str, str] = {}
    if storage.is_s3:
        shared = {"url": dvc_remote_url(settings), "endpointurl": storage.endpoint, "region": storage.region}
        if storage.access_key:
            secret["access_key_id"] = storage.access_key
        if storage.secret_key:
            secret["secret_access_key"] = storage.secret_key
    else:
        shared = {"url": dvc_remote_url(settings)}
    # Storage set here (not followed from the committed config, as a fresh clone does) makes the
    # embedded remote ours; another workspace's directory is never created here.
    follows_git = not owns_remote(settings.workspace) and committed_remote(settings.workspace) == shared
    if settings.remote_dir is None and not follows_git:
        (settings.state_dir / "dvc-remote").mkdir(parents=True, exist_ok=True)
    cache_dir = str(settings.dvc_cache_dir) if settings.dvc_cache_dir else None
    site_cache = str(settings.state_dir / "dvc-site-cache")
    wanted = {"site_cache_dir": site_cache, "shared": shared, "secret": secret or None, "cache_dir": cache_dir}
    key = settings.workspace.resolve()
    if _CHECKED.get(key) == (wanted, _config_files_state(settings)):
        return  # this process checked (or wrote) exactly these files for these settings
    config = Config(dvc_dir=str(settings.workspace / ".dvc"), validate=False)
    # Rewritten only when something changed: this runs before every mutation.
    conf = config.read("repo")
    core, cache = conf.get("core", {}), conf.get("cache", {})
    current = (core.get("remote"), str(core.get("autostage")), cache.get("type"), conf.get("remote", {}).get(REMOTE))
    if current != (REMOTE, "False", CACHE_TYPES, shared):
        with config.edit("repo") as conf:
            conf.setdefault("core", {})["remote"] = REMOTE
            conf.setdefault("core", {})["autostage"] = False
            # Commits and snapshots are immutable: link them from the cache instead of copying.
            conf.setdefault("cache", {})["type"] = CACHE_TYPES
            conf.setdefault("remote", {})[REMOTE] = shared
    conf = config.read("local")
    current = (conf.get("core", {}).get("site_cache_dir"), conf.get("remote", {}).get(REMOTE), conf.get("cache", {}).get("dir"))
    if current != (site_cache, wanted["secret"], cache_dir) or not _private(Path(config.files["local"])):
        conf.setdefault("core", {})["site_cache_dir"] = site_cache
        if secret:
            conf.setdefault("remote", {})[REMOTE] = secret
        else:  # also drops the url a workspace of before kept here
            conf.get("remote", {}).pop(REMOTE, None)
        if cache_dir:
            conf.setdefault("cache", {})["dir"] = cache_dir
        else:
            conf.get("cache", {}).pop("dir", None)
        _write_local_config(config, conf)
    _CHECKED[key] = (wanted, _config_files_state(settings))


def require_local_remote(settings: Settings) -> None:
    """StorageError unless the embedded remote directory exists: a clone made on another machine
    names the original workspace's, which only that machine has."""
    if settings.storage.is_s3 or settings.local_remote.is_dir():
        return
    raise StorageError(
        f"the DVC remote {settings.local_remote} (the embedded remote of the workspace this one was "
        "cloned from, named in .dvc/config) is not on this machine: clone on that machine, copy the "
        f"directory here and set {LOCAL_REMOTE_ENV}=DIR, or use an S3 remote (MINIAUTOML_S3_ENDPOINT)"
    )


# Workspace -> (settings, config files' state) that configure_remote last found or left right:
# Config() reads every level (system, global, repo, local), ~20 ms before each commit otherwise.
_CHECKED: dict[Path, tuple] = {}


def _config_files_state(settings: Settings) -> tuple:
    state = []
    for name in ("config", "config.local"):
        try:
            st = (settings.workspace / ".dvc" / name).stat()
            state.append((st.st_mtime_ns, st.st_size, st.st_mode, st.st_ino))
        except FileNotFoundError:
            state.append(None)
    return tuple(state)


def _private(path: Path) -> bool:
    try:
        return path.stat().st_mode & 0o777 == LOCAL_CONFIG_MODE
    except FileNotFoundError:
        return False


def _write_local_config(config: "Config", conf: dict) -> None:
    """`.dvc/config.local` (it holds the S3 keys), readable by its owner only: written atomically,
    0600 from the first byte on (compat.dvc); else by DVC, in place, in a file made 0600 first."""
    path = Path(config.files["local"])
    if compat_dvc.LOCAL_CONFIG.applies():
        compat_dvc.write_local_config(path, conf, LOCAL_CONFIG_MODE)
        return
    path.touch(mode=LOCAL_CONFIG_MODE, exist_ok=True)
    os.chmod(path, LOCAL_CONFIG_MODE)
    with config.edit("local") as edited:
        edited.clear()
        edited.update(conf)


def _upload(settings: Settings, objects: dict[str, Path]) -> None:
    """`dvc push` of cache objects: the same keys on the remote, each written once."""
    storage = settings.storage
    require_local_remote(settings)
    try:
        if not storage.is_s3:
            for md5, path in objects.items():
                compat_dvc.store_object(path, settings.local_remote / compat_dvc.object_key(md5))
            return
        from minio.error import S3Error

        from miniautoml.adapters import s3

        client = s3.client(storage)
        for md5, path in objects.items():
            key = f"dvc/{compat_dvc.object_key(md5)}"
            if path.stat().st_size > SMALL_OBJECT_BYTES:  # small: uploading costs what asking costs
                try:
                    client.stat_object(storage.bucket, key)
                    continue
                except S3Error as exc:
                    if exc.code != "NoSuchKey":
                        raise
            client.fput_object(storage.bucket, key, str(path))
    except Exception as exc:
        raise StorageError(f"could not upload to the DVC remote: {_reason(exc)}") from None


def add_and_push(settings: Settings, directory: Path) -> str:
    """`dvc add <directory>` then `dvc push` of it; returns the `….dir` md5.

    Without a DVC Repo (compat.dvc writes DVC 3's layout: a Repo's fixed cost grew with the
    number of commits); the `.dvc` file comes last, so until it exists the commit does not count
    (store.repair). Outside the DVC versions that layout was pinned on, through a Repo.
    """
    if not compat_dvc.COMMIT_LAYOUT.applies():
        with open_repo(settings) as repo:
            (md5,) = add(repo, [directory]).values()
            push(repo, [directory.with_name(directory.name + ".dvc")])
        return md5
    tracked = compat_dvc.track(directory, settings.dvc_cache_dir or settings.workspace / ".dvc" / "cache")
    _upload(settings, tracked.objects)
    compat_dvc.write_dvc_file(tracked)
    return tracked.md5


def add(repo: "Repo", paths: list[Path]) -> dict[Path, str]:
    """Track `paths` in the DVC cache; returns each path's DVC md5 (`….dir` for directories)."""
    stages = repo.add([str(p) for p in paths])
    return {Path(stage.outs[0].fs_path): stage.outs[0].hash_info.value for stage in stages}


def push(repo: "Repo", dvc_files: list[Path]) -> None:
    try:
        repo.push(targets=[str(p) for p in dvc_files], remote=REMOTE)
    except Exception as exc:  # DVC wraps every transport error differently
        raise StorageError(f"could not upload to the DVC remote: {_reason(exc)}") from None


def pull(repo: "Repo", dvc_files: list[Path]) -> None:
    try:
        repo.pull(targets=[str(p) for p in dvc_files], remote=REMOTE)
    except Exception as exc:
        raise StorageError(f"could not download from the DVC remote: {_reason(exc)}") from None


def remote_location(settings: Settings, md5: str) -> str:
    """Where DVC 3 keeps an object on the remote: `<remote>/files/md5/ab/cdef…`."""
    base = dvc_remote_url(settings) if settings.storage.is_s3 else settings.local_remote.as_uri()
    return f"{base}/{compat_dvc.object_key(md5)}"


def _reason(exc: BaseException) -> str:
    while exc.__cause__ is not None and str(exc.__cause__):
        exc = exc.__cause__
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
