"""Switching the workspace's storage to the stack's S3 server on `up --s3`, and back on `down`.

`up --s3` writes the server's URL as `[storage] endpoint` in miniautoml.toml and remembers what was
there before (`storage_before_path`); `down` puts that back, then uploads from the local DVC cache
what was pushed only to the stopped server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from miniautoml.config import (
    CONFIG_FILE,
    Settings,
    StorageSettings,
    dvc_remote_url,
    load_settings,
    s3_dvc_url,
)
from miniautoml.errors import MiniAutoMLError
from miniautoml.files import atomic_write_json, atomic_write_text


def set_storage_endpoint(settings: Settings, endpoint: str) -> tuple[str | None, bool]:
    """Write `[storage] endpoint` into the workspace's miniautoml.toml: (old text, changed?)."""
    import tomlkit

    path = settings.workspace / CONFIG_FILE
    old = path.read_text(encoding="utf-8") if path.exists() else None
    doc = tomlkit.parse(old) if old else tomlkit.document()
    storage = doc.get("storage")
    if storage is None:
        storage = tomlkit.table()
        doc["storage"] = storage
    if storage.get("endpoint") == endpoint:
        return old, False
    storage["endpoint"] = endpoint  # the endpoint only: keys stay in the environment
    settings.workspace.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, tomlkit.dumps(doc))
    return old, True


def restore_config(settings: Settings, old: str | None) -> None:
    path = settings.workspace / CONFIG_FILE
    if old is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_text(path, old)


def storage_before_path(settings: Settings) -> Path:
    """What `[storage] endpoint` was before `up --s3` changed it; `down` puts it back.
    (Not in stack_dir: every `*.json` there is a service's pid file.)"""
    return settings.state_dir / "storage-before-s3.json"


def _toml_endpoint(text: str | None) -> str | None:
    import tomllib

    try:
        endpoint = tomllib.loads(text or "").get("storage", {}).get("endpoint")
    except (tomllib.TOMLDecodeError, AttributeError):
        return None
    return endpoint if isinstance(endpoint, str) and endpoint else None


def save_storage_before(settings: Settings, old: str | None, endpoint: str) -> bool:
    """Remember the storage endpoint `up --s3` replaced (once: a second `up --s3` before `down`
    keeps the first record, the state before the stack). Returns whether it wrote the record."""
    path = storage_before_path(settings)
    if path.exists():
        return False
    record = {"endpoint": _toml_endpoint(old), "config_existed": old is not None, "set_endpoint": endpoint}
    atomic_write_json(path, record)
    return True


def _restore_storage(settings: Settings, s3_url: str | None) -> dict:
    """Put back `[storage] endpoint` as it was before `up --s3`, if it still names the stopped
    server. Only that key changes: other edits to miniautoml.toml since `up` stay."""
    import tomlkit

    path = settings.workspace / CONFIG_FILE
    backup_path = storage_before_path(settings)
    try:
        before = json.loads(backup_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}  # no record (an older `up`): the endpoint was the embedded default's, none
    stopped = s3_url or before.get("set_endpoint")
    text = path.read_text(encoding="utf-8") if path.exists() else None
    out: dict[str, Any] = {"stopped_endpoint": stopped, "config": str(path)}
    current = _toml_endpoint(text)
    if text is None or current is None or current != stopped:
        out["restored"] = False  # the workspace no longer names the stopped server: left as is
    else:
        doc = tomlkit.parse(text)
        previous = before.get("endpoint")
        if previous:
            doc["storage"]["endpoint"] = previous
        else:
            del doc["storage"]["endpoint"]
            if not doc["storage"]:
                del doc["storage"]
        new_text = tomlkit.dumps(doc)
        if not new_text.strip() and not before.get("config_existed", False):
            path.unlink()
        else:
            atomic_write_text(path, new_text)
        out["restored"] = True
    backup_path.unlink(missing_ok=True)
    return out


def _repush(settings: Settings) -> int:
    """Upload everything the workspace tracks from the local DVC cache to its (restored) remote.

    Dataset commits and snapshots made while the stack's S3 server was the remote were pushed
    only there; their bytes are still in the local DVC cache (`.dvc/cache`), so the remote the
    workspace is back on gets them now and stays complete. Returns the number of files uploaded.
    """
    if not (settings.workspace / ".dvc").is_dir():
        return 0  # no DVC repository: no dataset was ever committed here
    from miniautoml.adapters import dvc
    from miniautoml.adapters import s3 as s3_adapter
    from miniautoml.errors import StorageError
    from miniautoml.workspace import locked

    with locked(settings, timeout=60.0):  # not while a dataset mutation runs (they are short)
        dvc.configure_remote(settings)
        if settings.storage.is_s3:
            s3_adapter.ensure_bucket(settings.storage)
        with dvc.open_repo(settings) as repo:
            try:
                return int(repo.push(remote=dvc.REMOTE) or 0)
            except Exception as exc:  # noqa: BLE001 - DVC wraps transport errors in many types
                raise StorageError(f"could not upload to the DVC remote: {dvc._reason(exc)}") from None


def after_s3(settings: Settings, record: dict | None) -> tuple[dict, list[str]]:
    """After `down` stopped the S3 server: restore the storage settings, re-home the data, warn."""
    warnings: list[str] = []
    kind = (record or {}).get("kind")
    bucket = (record or {}).get("bucket") or settings.storage.bucket
    if kind == "moto":
        warnings.append(
            f"the local S3 server was moto, which keeps its data in memory: what was pushed to it is lost "
            f"(MLflow artifacts under s3://{bucket}/mlflow: models of runs trained while it ran cannot be "
            f"loaded; DVC data under {s3_dvc_url(bucket)}: the local DVC cache still has it)"
        )
    elif kind == "minio":
        warnings.append(f"the local S3 server's data stays in {record.get('data')}; `miniautoml up --s3` serves it again")
    storage = _restore_storage(settings, (record or {}).get("url"))
    settings = load_settings(settings.workspace)
    storage["endpoint"] = settings.storage.endpoint  # None: the embedded local remote
    storage["remote"] = dvc_remote_url(settings)
    if not storage["restored"]:
        return storage, warnings  # the workspace names other storage: nothing to re-home
    try:
        storage["repushed"] = _repush(settings)
    except MiniAutoMLError as exc:
        storage["repushed"] = None
        storage["repush_error"] = str(exc)
        warnings.append(
            f"dataset data made while the local S3 server ran is only in the local DVC cache: {exc}; "
            f"`dvc push` in {settings.workspace} uploads it to {storage['remote']} once that works"
        )
    return storage, warnings


def ensure_bucket(settings: Settings, endpoint: str, keys: dict[str, str]) -> None:
    from miniautoml.adapters import s3 as s3_adapter

    s3_adapter.ensure_bucket(
        StorageSettings(
            endpoint=endpoint,
            bucket=settings.storage.bucket,
            access_key=keys["AWS_ACCESS_KEY_ID"],
            secret_key=keys["AWS_SECRET_ACCESS_KEY"],
            region=settings.storage.region,
        )
    )
