"""Dataset management on the embedded local remote: the book's API through the real CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from miniautoml.config import load_settings
from miniautoml.datasets import create_dataset, fetch_snapshot, prepare_snapshot, update_dataset


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def part1(tmp_path: Path) -> Path:
    return write(tmp_path / "p1.csv", 'hello there,greet\nbye now,bye\n"hi, you",greet;polite\n')


@pytest.fixture
def part2(tmp_path: Path) -> Path:
    return write(tmp_path / "p2.csv", "text,label\nsee you,bye\nmany thanks,thank\n")


def git_log(ws: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(ws), "log", "--format=%s"], capture_output=True, text=True)
    return out.stdout.splitlines()


def test_create_returns_summary_with_initial_commit(cli, part1):
    out = cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(part1), "--description", "demo", "--tag", "src=a")
    assert out.returncode == 0, out.stderr
    summary = out.json
    assert summary["dataset_id"] == "1"
    assert summary["name"] == "intents" and summary["description"] == "demo"
    assert summary["dataset_type"] == "TEXT_INTENT"
    [commit] = summary["commits"]
    assert commit["commit_id"] == "1" and commit["commit_message"] == "Initial commit"
    assert commit["tags"] == {"src": "a"}
    assert commit["statistics"]["numExamples"] == 3
    assert commit["statistics"]["labels"] == {"bye": 1, "greet": 2, "polite": 1}
    assert commit["dvc_md5"].endswith(".dir")


def test_dataset_ids_count_up_and_names_resolve(cli, part1):
    cli("dataset", "create", "a", "--type", "TEXT_INTENT", "--file", str(part1))
    second = cli("dataset", "create", "b", "--type", "GENERIC", "--file", str(part1)).json
    assert second["dataset_id"] == "2"
    assert cli("dataset", "show", "b").json["dataset_id"] == "2"
    assert [d["name"] for d in cli("dataset", "list").json] == ["a", "b"]


def test_update_appends_commit_with_header_row_accepted(cli, part1, part2):
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(part1))
    out = cli("dataset", "update", "intents", "--file", str(part2), "--message", "more", "--tag", "src=b")
    assert out.returncode == 0, out.stderr
    commits = out.json["commits"]
    assert [c["commit_id"] for c in commits] == ["1", "2"]
    assert commits[1]["commit_message"] == "more"
    assert commits[1]["statistics"]["numExamples"] == 2


def test_each_mutation_is_one_git_commit_naming_the_dataset(cli, workspace, part1, part2):
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(part1))
    cli("dataset", "update", "1", "--file", str(part2))
    log = git_log(workspace)
    assert log[0] == "dataset 1 (intents): commit 2: Commit 2"
    assert log[1] == "dataset 1 (intents): commit 1: Initial commit"


def test_prepare_names_selection_with_book_hash(cli, part1, part2):
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(part1), "--tag", "src=a")
    cli("dataset", "update", "intents", "--file", str(part2), "--tag", "src=b")
    assert cli("dataset", "prepare", "intents").json["version_hash"] == "hashBg=="
    assert cli("dataset", "prepare", "intents", "--commit", "1").json["version_hash"] == "hashAg=="
    only_b = cli("dataset", "prepare", "intents", "--tag", "src=b").json
    assert only_b["version_hash"] == "hashBA==" and [c["commit_id"] for c in only_b["commits"]] == ["2"]


def test_fetch_merges_commits_and_unifies_labels(cli, part1, part2):
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(part1))
    cli("dataset", "update", "intents", "--file", str(part2))
    vhash = cli("dataset", "prepare", "intents").json["version_hash"]
    snap = cli("dataset", "fetch", "intents", vhash).json
    assert snap["state"] == "READY"
    root = Path(snap["root"])
    assert json.loads((root / "labels.json").read_text()) == ["bye", "greet", "polite", "thank"]
    rows = (root / "examples.csv").read_text().splitlines()
    assert rows[0] == "hello there,greet" and rows[-1] == "many thanks,thank" and len(rows) == 5
    assert snap["statistics"]["numExamples"] == 5 and snap["statistics"]["numLabels"] == 4
    assert snap["source"].endswith(snap["dvc_md5"][2:])


def test_blank_lines_before_the_header_do_not_make_it_an_example(cli, tmp_path):
    data = write(tmp_path / "blank-first.csv", "\n\ntext,label\nhi,greet\n")
    created = cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data))
    assert created.returncode == 0, created.stderr
    assert created.json["commits"][0]["statistics"] == {"numExamples": 1, "numLabels": 1, "labels": {"greet": 1}}
    root = Path(cli("dataset", "fetch", "intents", "hashAg==").json["root"])
    assert (root / "examples.csv").read_text() == "hi,greet\n"
    assert json.loads((root / "labels.json").read_text()) == ["greet"]  # agrees with examples.csv


def test_prepare_again_reuses_the_snapshot(cli, workspace, part1):
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(part1))
    cli("dataset", "prepare", "intents")
    commits_before = git_log(workspace)
    assert cli("dataset", "prepare", "intents").json["version_hash"] == "hashAg=="
    assert git_log(workspace) == commits_before


def test_generic_dataset_keeps_files_as_parts(cli, tmp_path):
    a = write(tmp_path / "a.txt", "alpha")
    b = write(tmp_path / "b.bin", "beta")
    cli("dataset", "create", "raw", "--type", "GENERIC", "--file", str(a), "--file", str(b))
    cli("dataset", "update", "raw", "--file", str(a))
    snap = cli("dataset", "fetch", "raw", "hashBg==").json
    assert snap["parts"] == ["1-a.txt", "1-b.bin", "2-a.txt"]
    assert (Path(snap["root"]) / "1-b.bin").read_text() == "beta"


def test_delete_removes_dataset_but_history_keeps_it(cli, workspace, part1):
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(part1))
    assert cli("dataset", "delete", "intents").returncode == 0
    assert cli("dataset", "list").json == []
    assert cli("dataset", "show", "intents").returncode != 0
    assert git_log(workspace)[0] == "dataset 1 (intents): deleted"
    # a new dataset never reuses the deleted id
    assert cli("dataset", "create", "again", "--type", "TEXT_INTENT", "--file", str(part1)).json["dataset_id"] == "2"


def test_fetch_pulls_snapshot_missing_on_disk(cli, workspace, part1):
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(part1))
    root = Path(cli("dataset", "fetch", "intents", "hashAg==").json["root"])
    subprocess.run(["rm", "-rf", str(root)], check=True)
    again = cli("dataset", "fetch", "intents", "hashAg==")
    assert again.returncode == 0, again.stderr
    assert (root / "examples.csv").is_file()


def test_python_api_matches_cli(workspace, part1, part2):
    settings = load_settings(workspace)
    summary = create_dataset(settings, "intents", "TEXT_INTENT", part1)
    summary = update_dataset(settings, summary.dataset_id, part2, message="second")
    version = prepare_snapshot(settings, "intents")
    snap = fetch_snapshot(settings, "intents", version.version_hash)
    assert [c.commit_id for c in summary.commits] == ["1", "2"]
    assert version.version_hash == "hashBg=="
    assert snap.statistics["numExamples"] == 5


def test_init_is_idempotent_and_keeps_state_out_of_git(cli, workspace):
    first = cli("init")
    second = cli("init")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert first.json["created"] is True and second.json["created"] is False
    assert "/.miniautoml/" in (workspace / ".gitignore").read_text()
    tracked = subprocess.run(["git", "-C", str(workspace), "ls-files"], capture_output=True, text=True).stdout
    assert ".dvc/config.local" not in tracked and ".miniautoml" not in tracked



def test_commits_and_snapshots_are_what_dvc_itself_reads_as_tracked_and_pushed(workspace, tmp_path, part1):
    # The service writes cache, remote and .dvc files itself (no DVC Repo): DVC must agree with it.
    from dvc.repo import Repo

    settings = load_settings(workspace)
    create_dataset(settings, "generic", "GENERIC", [part1, write(tmp_path / "notes.txt", "some notes\n")])
    create_dataset(settings, "intents", "TEXT_INTENT", part1)
    fetch_snapshot(settings, "intents", prepare_snapshot(settings, "intents").version_hash)
    repo = Repo(str(workspace))
    try:
        assert repo.status() == {}  # workspace bytes match each .dvc file's md5, cache complete
        assert repo.status(cloud=True, remote="storage") == {}  # every object on the remote
    finally:
        repo.close()
    dvc_files = sorted(p.relative_to(workspace) for p in workspace.glob("data/datasets/*/*/*.dvc"))
    assert [str(p) for p in dvc_files] == [
        "data/datasets/1/commits/1.dvc", "data/datasets/2/commits/1.dvc", "data/datasets/2/snapshots/hashAg==.dvc"
    ]
    assert (workspace / "data/datasets/2/commits/.gitignore").read_text() == "/1\n"
