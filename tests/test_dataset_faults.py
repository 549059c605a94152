"""Crashes and concurrency: the workspace stays readable and the next mutation repairs it."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from miniautoml.datasets.version_hash import VersionHash
from miniautoml.faults import ENV


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(4):
        p = tmp_path / f"f{i}.csv"
        p.write_text(f"text number {i},label{i}\nmore text {i},label{i}\n", encoding="utf-8")
        paths.append(p)
    return paths


def status(ws: Path) -> str:
    return subprocess.run(["git", "-C", str(ws), "status", "--porcelain"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("point", ["before-dvc-add", "after-push", "before-git-commit"])
def test_killed_update_leaves_readable_workspace_and_next_update_repairs(cli, workspace, files, point):
    assert cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(files[0])).returncode == 0
    killed = cli("dataset", "update", "intents", "--file", str(files[1]), env={ENV: point})
    assert killed.returncode == -9
    shown = cli("dataset", "show", "intents")
    assert shown.returncode == 0 and len(shown.json["commits"]) in (1, 2)
    after = cli("dataset", "update", "intents", "--file", str(files[2]))
    assert after.returncode == 0, after.stderr
    ids = [c["commit_id"] for c in after.json["commits"]]
    # killed after its metadata was saved, the update is kept; earlier, it is undone
    assert ids == (["1", "2", "3"] if point == "before-git-commit" else ["1", "2"])
    assert status(workspace) == ""
    snap = cli("dataset", "fetch", "intents", VersionHash.of(map(int, ids)).text)
    assert snap.returncode == 0, snap.stderr
    assert snap.json["statistics"]["numExamples"] == 2 * len(ids)


def test_killed_create_leaves_no_dataset(cli, workspace, files):
    killed = cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(files[0]), env={ENV: "after-push"})
    assert killed.returncode == -9
    again = cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(files[0]))
    assert again.returncode == 0, again.stderr
    assert [d["name"] for d in cli("dataset", "list").json] == ["intents"]


def test_concurrent_updates_both_land_with_distinct_commit_ids(cli, workspace, files):
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(files[0]))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda f: cli("dataset", "update", "intents", "--file", str(f)), files[1:3]))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    final = cli("dataset", "show", "intents").json
    assert [c["commit_id"] for c in final["commits"]] == ["1", "2", "3"]
    assert status(workspace) == ""


def test_busy_workspace_fails_cleanly_when_lock_wait_runs_out(cli, workspace, files):
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(files[0]))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from miniautoml.config import load_settings; from miniautoml.workspace import locked\n"
         "with locked(load_settings(sys.argv[1])):\n print('held', flush=True); sys.stdin.read()", str(workspace)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        out = cli("dataset", "update", "intents", "--file", str(files[1]), env={"MINIAUTOML_LOCK_TIMEOUT": "0.5"})
        assert out.returncode == 4 and "locked by another operation" in out.error_line
    finally:
        holder.communicate("")
    assert len(cli("dataset", "show", "intents").json["commits"]) == 1
