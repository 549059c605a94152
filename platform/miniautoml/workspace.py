"""A workspace: a git + DVC repository holding dataset metadata in git and bytes in DVC."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from miniautoml.adapters import dvc, git, s3
from miniautoml.config import STATE_DIR, Settings, dvc_remote_url
from miniautoml.errors import UserInputError, WorkspaceBusyError
from miniautoml.locks import file_lock
from miniautoml.redact import redact_uri

LOCK_TIMEOUT_ENV = "MINIAUTOML_LOCK_TIMEOUT"


def init_workspace(settings: Settings) -> dict:
    """Make `settings.workspace` a workspace (idempotent); returns a description of it."""
    ws = settings.workspace
    if ws.exists() and not ws.is_dir():
        raise UserInputError(f"{ws}: exists and is not a directory")
    ws.mkdir(parents=True, exist_ok=True)
    created = False
    if not git.is_repo_root(ws):
        git.init(ws)
        created = True
    settings.state_dir.mkdir(exist_ok=True)
    _ignore_state_dir(ws)
    if settings.storage.is_s3:
        s3.ensure_bucket(settings.storage)
    dvc.init(settings)
    setup_files = [f for f in (".gitignore", ".dvc/config", ".dvc/.gitignore", ".dvcignore") if (ws / f).exists()]
    git.commit(ws, setup_files, "Initialize MiniAutoML workspace")
    return {
        "workspace": str(ws),
        "created": created,
        "remote": dvc_remote_url(settings),
        "tracking_uri": redact_uri(settings.tracking_uri),
    }


def ensure_workspace(settings: Settings) -> None:
    """Initialise on first use, so `dataset create` works in a fresh directory."""
    if not (settings.workspace / ".dvc").is_dir() or not settings.state_dir.is_dir():
        init_workspace(settings)
    else:
        dvc.configure_remote(settings)  # storage settings may have changed since init


def _ignore_state_dir(ws: Path) -> None:
    gitignore = ws / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    entry = f"/{STATE_DIR}/"
    if entry not in lines:
        gitignore.write_text("\n".join([*lines, entry]) + "\n", encoding="utf-8")


@contextlib.contextmanager
def locked(settings: Settings, timeout: float | None = None) -> Iterator[None]:
    """Serialise mutations of one workspace across processes (waits, then fails cleanly)."""
    if timeout is None:
        timeout = float(os.environ.get(LOCK_TIMEOUT_ENV, "300"))
    busy = lambda: WorkspaceBusyError(f"workspace {settings.workspace} is locked by another operation; try again")  # noqa: E731
    with file_lock(settings.state_dir / "workspace.lock", timeout, busy):
        yield
