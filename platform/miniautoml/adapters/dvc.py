"""DVC: tracks dataset commits and snapshots, moves their bytes to and from the remote."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from miniautoml.config import Settings
from miniautoml.errors import StorageError
from miniautoml.files import atomic_write_text

if TYPE_CHECKING:
    from dvc.config import Config
    from dvc.repo import Repo

REMOTE = "storage"
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

    Endpoint and keys go to `.dvc/config.local` (never committed); the repo config only says
    which remote is the default, so a clone knows where its data lives once it sets storage.
    """
    from dvc.config import Config

    storage = settings.storage
    if storage.is_s3:
        local = {"url": f"s3://{storage.bucket}/dvc", "endpointurl": storage.endpoint, "region": storage.region}
        if storage.access_key:
            local["access_key_id"] = storage.access_key
        if storage.secret_key:
            local["secret_access_key"] = storage.secret_key
    else:
        settings.local_remote.mkdir(parents=True, exist_ok=True)
        local = {"url": str(settings.local_remote)}
    config = Config(dvc_dir=str(settings.workspace / ".dvc"), validate=False)
    with config.edit("repo") as conf:
        conf.setdefault("core", {})["remote"] = REMOTE
        conf.setdefault("core", {})["autostage"] = False
        # Commits and snapshots are immutable: link them from the cache instead of copying.
        conf.setdefault("cache", {})["type"] = "reflink,hardlink,copy"
    conf = config.read("local")
    conf.setdefault("core", {})["site_cache_dir"] = str(settings.state_dir / "dvc-site-cache")
    conf.setdefault("remote", {})[REMOTE] = local
    _write_local_config(config, conf)


def _write_local_config(config: "Config", conf: dict) -> None:
    """`.dvc/config.local` (it holds the S3 keys): written by us, atomically, mode 0600 from the
    first byte on, instead of by DVC's `Config.edit`, which opens the file 0644 in place."""
    from configobj import ConfigObj
    from dvc.config import Config, _pack_named

    path = Path(config.files["local"])
    lines = ConfigObj(_pack_named(Config._save_paths(conf, str(path)))).write()
    atomic_write_text(path, "".join(f"{line}\n" for line in lines), mode=LOCAL_CONFIG_MODE)


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
    base = (
        f"s3://{settings.storage.bucket}/dvc" if settings.storage.is_s3 else settings.local_remote.as_uri()
    )
    return f"{base}/files/md5/{md5[:2]}/{md5[2:]}"


def _reason(exc: BaseException) -> str:
    while exc.__cause__ is not None and str(exc.__cause__):
        exc = exc.__cause__
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
