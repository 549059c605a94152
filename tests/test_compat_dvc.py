"""The patches of DVC internals (miniautoml.compat.dvc), pinned against DVC itself: what
`add_and_push` writes is what `dvc add` + `dvc push` write on the same files, and the private
local config is what DVC's Config would write. The unpatched paths (outside the pinned
versions) give DVC the same state through its public API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from miniautoml import compat
from miniautoml.adapters import dvc
from miniautoml.compat import dvc as compat_dvc
from miniautoml.config import load_settings
from miniautoml.workspace import init_workspace

OUTSIDE = compat.guard("a patch pinned elsewhere", "dvc<3", unpatched="DVC's public route")
# Nested, empty and duplicate-content files: what a `.dir` listing and `nfiles` must get right.
FILES = {"examples.csv": "text,label\nhello,greeting\n", "nested/notes.txt": "some notes\n",
         "nested/deeper/copy.txt": "some notes\n", "empty.txt": ""}  # fmt: skip
DIRECTORY = "data/datasets/1/commits/1"


def workspace_with_files(root: Path) -> Path:
    settings = load_settings(root)
    init_workspace(settings)
    for name, text in FILES.items():
        (root / DIRECTORY / name).parent.mkdir(parents=True, exist_ok=True)
        (root / DIRECTORY / name).write_text(text, encoding="utf-8")
    return root


def run_dvc(ws: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ws, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"}, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def objects(base: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `base`: relative path -> (bytes, permission bits)."""
    return {str(p.relative_to(base)): (p.read_bytes(), p.stat().st_mode & 0o777) for p in sorted(base.rglob("*"))
            if p.is_file()}  # fmt: skip


@pytest.fixture
def ours_and_dvcs(tmp_path: Path) -> tuple[Path, Path]:
    """Two workspaces holding the same files: one for add_and_push, one for DVC's own commands."""
    return workspace_with_files(tmp_path / "ours"), workspace_with_files(tmp_path / "dvcs")


def assert_dvc_sees_it_tracked_and_pushed(ws: Path) -> None:
    assert json.loads(run_dvc(ws, "status", "--json")) == {}
    assert json.loads(run_dvc(ws, "status", "--cloud", "--json")) == {}


def test_pin_add_and_push_writes_what_dvc_add_and_dvc_push_write(ours_and_dvcs: tuple[Path, Path]) -> None:
    ours, dvcs = ours_and_dvcs
    md5 = dvc.add_and_push(load_settings(ours), ours / DIRECTORY)
    run_dvc(dvcs, "add", DIRECTORY)
    run_dvc(dvcs, "push", f"{DIRECTORY}.dvc")
    dvc_file = f"{DIRECTORY}.dvc"
    assert (ours / dvc_file).read_text() == (dvcs / dvc_file).read_text()
    assert f"md5: {md5}\n" in (ours / dvc_file).read_text()
    assert (ours / DIRECTORY).with_name(".gitignore").read_text() == (dvcs / DIRECTORY).with_name(".gitignore").read_text()
    assert objects(ours / ".dvc/cache") == objects(dvcs / ".dvc/cache")
    assert objects(load_settings(ours).local_remote) == objects(load_settings(dvcs).local_remote)
    assert_dvc_sees_it_tracked_and_pushed(ours)


def test_outside_its_versions_add_and_push_goes_through_dvc(
    ours_and_dvcs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    patched, unpatched = ours_and_dvcs
    md5 = dvc.add_and_push(load_settings(patched), patched / DIRECTORY)
    monkeypatch.setattr(compat_dvc, "COMMIT_LAYOUT", OUTSIDE)
    assert dvc.add_and_push(load_settings(unpatched), unpatched / DIRECTORY) == md5
    assert_dvc_sees_it_tracked_and_pushed(unpatched)


LOCAL = {"core": {"site_cache_dir": "/tmp/site-cache"}, "cache": {"dir": "/tmp/cache"},
         "remote": {"storage": {"url": "s3://bucket/dvc", "endpointurl": "http://127.0.0.1:9",
                                "access_key_id": "key", "secret_access_key": "secret"}}}  # fmt: skip


def local_level(dvc_dir: Path) -> dict:
    """The local level as adapters.dvc edits it: DVC's reading of the file, then our values."""
    from dvc.config import Config

    return {**Config(dvc_dir=str(dvc_dir), validate=False).read("local"), **LOCAL}


def test_pin_the_private_local_config_is_what_dvc_writes(tmp_path: Path) -> None:
    from dvc.config import Config

    ours, dvcs = tmp_path / "ours/.dvc", tmp_path / "dvcs/.dvc"
    ours.mkdir(parents=True)
    dvcs.mkdir(parents=True)
    compat_dvc.write_local_config(ours / "config.local", local_level(ours), 0o600)
    with Config(dvc_dir=str(dvcs), validate=False).edit("local") as conf:
        conf.update(LOCAL)
    assert (ours / "config.local").read_text() == (dvcs / "config.local").read_text()
    assert (ours / "config.local").stat().st_mode & 0o777 == 0o600
    assert Config(dvc_dir=str(ours), validate=False).read("local") == local_level(dvcs)


def test_outside_its_versions_dvc_writes_the_local_config_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dvc.config import Config

    (tmp_path / ".dvc").mkdir()
    monkeypatch.setattr(compat_dvc, "LOCAL_CONFIG", OUTSIDE)
    wanted = local_level(tmp_path / ".dvc")
    dvc._write_local_config(Config(dvc_dir=str(tmp_path / ".dvc"), validate=False), wanted)
    assert (tmp_path / ".dvc/config.local").stat().st_mode & 0o777 == 0o600
    assert Config(dvc_dir=str(tmp_path / ".dvc"), validate=False).read("local") == wanted
