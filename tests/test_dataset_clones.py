"""A git clone of a workspace on the embedded local remote: `.dvc/config` (committed) names the
original's remote by its absolute path, so a clone on this machine pulls the same bytes with
`dvc pull` and `dataset fetch`; a clone elsewhere is told in one line what to do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
EXAMPLES = 'hello there,greet\nbye now,bye\n'


def clean_env(**extra: str) -> dict[str, str]:
    """A user's environment with no MiniAutoML or S3 settings: the clone has only what git gave it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIAUTOML_", "MINIO_", "AWS_"))}
    return {**env, **extra}


def miniautoml(ws: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "miniautoml"), "-w", str(ws), *args], capture_output=True, text=True,
                          env=clean_env(**extra), stdin=subprocess.DEVNULL, timeout=300)


@pytest.fixture
def original(tmp_path: Path) -> tuple[Path, str]:
    """A workspace with one dataset and its snapshot on the embedded remote; its version hash."""
    ws = tmp_path / "ws"
    ws.mkdir()
    csv = tmp_path / "p1.csv"
    csv.write_text(EXAMPLES, encoding="utf-8")
    assert miniautoml(ws, "dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(csv)).returncode == 0
    prepared = miniautoml(ws, "dataset", "prepare", "intents")
    assert prepared.returncode == 0, prepared.stderr
    return ws, json.loads(prepared.stdout)["version_hash"]


def clone(ws: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(ws), str(dest)], check=True)
    return dest


def test_the_committed_dvc_config_names_the_embedded_remote_by_its_absolute_path(original):
    ws, _ = original
    committed = subprocess.run(["git", "-C", str(ws), "show", "HEAD:.dvc/config"], capture_output=True,
                               text=True, check=True).stdout
    assert f"url = {ws.resolve() / '.miniautoml' / 'dvc-remote'}" in committed


def test_a_clone_on_this_machine_gets_the_same_bytes_with_dvc_pull(original, tmp_path):
    ws, _ = original
    copy = clone(ws, tmp_path / "clone")
    pulled = subprocess.run([str(BIN / "dvc"), "pull"], cwd=copy, capture_output=True, text=True, env=clean_env())
    assert pulled.returncode == 0, pulled.stderr
    assert (copy / "data/datasets/1/commits/1/examples.csv").read_bytes() == \
        (ws / "data/datasets/1/commits/1/examples.csv").read_bytes()


def test_a_clone_on_this_machine_fetches_the_snapshot_and_stays_clean(original, tmp_path):
    ws, vhash = original
    copy = clone(ws, tmp_path / "clone")
    fetched = miniautoml(copy, "dataset", "fetch", "intents", vhash)
    assert fetched.returncode == 0, fetched.stderr
    snap = json.loads(fetched.stdout)
    assert (Path(snap["root"]) / "examples.csv").read_text() == EXAMPLES
    assert snap["source"].startswith((ws.resolve() / ".miniautoml" / "dvc-remote").as_uri())
    assert subprocess.run(["git", "-C", str(copy), "status", "--porcelain"], capture_output=True, text=True).stdout == ""


def test_a_clone_whose_embedded_remote_is_not_on_this_machine_says_what_to_do(original, tmp_path):
    """The original's directory gone (as on another machine): one line, exit 3, nothing created
    where the remote was; pointing MINIAUTOML_LOCAL_REMOTE at a copy of it gets the bytes."""
    ws, vhash = original
    copy = clone(ws, tmp_path / "clone")
    moved = shutil.move(str(ws / ".miniautoml" / "dvc-remote"), str(tmp_path / "remote-copy"))
    failed = miniautoml(copy, "dataset", "fetch", "intents", vhash)
    assert failed.returncode == 3 and failed.stdout == ""
    line = failed.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: the DVC remote {ws.resolve() / '.miniautoml' / 'dvc-remote'} ")
    assert "MINIAUTOML_LOCAL_REMOTE=DIR" in line and "Traceback" not in failed.stderr
    assert not (ws / ".miniautoml" / "dvc-remote").exists()
    fetched = miniautoml(copy, "dataset", "fetch", "intents", vhash, MINIAUTOML_LOCAL_REMOTE=moved)
    assert fetched.returncode == 0, fetched.stderr
    assert (Path(json.loads(fetched.stdout)["root"]) / "examples.csv").read_text() == EXAMPLES
