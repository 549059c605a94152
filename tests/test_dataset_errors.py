"""Bad input gets one clear line naming file:line or field, a non-zero exit, and no change."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def head(ws: Path) -> str:
    return subprocess.run(["git", "-C", str(ws), "rev-parse", "HEAD"], capture_output=True, text=True).stdout


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.csv"
    path.write_text("hello,greet\nbye,bye\n", encoding="utf-8")
    return path


@pytest.fixture
def existing(cli, workspace, good):
    """A workspace holding dataset 1 "intents"; yields its git HEAD before the bad call."""
    assert cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(good)).returncode == 0
    return head(workspace)


BAD_FILES = {
    "missing": (None, "file not found"),
    "empty.csv": (b"", "file is empty"),
    "latin1.csv": (b"ok,greet\ncaf\xe9,food\n", ":2: not valid UTF-8"),
    "columns.csv": (b"ok,greet\nthree,columns,here\n", ":2: expected 2 columns (text,label), found 3"),
    "notext.csv": (b"ok,greet\n ,greet\n", ":2: empty text"),
    "nolabel.csv": (b"ok,greet\nfine,\n", ":2: empty label"),
    "header.csv": (b"text,label\n", "no examples"),
    "quote.csv": (b'ok,greet\n"unclosed,greet\n', "malformed CSV"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_on_update_is_rejected_and_dataset_unchanged(cli, workspace, tmp_path, existing, name):
    content, message = BAD_FILES[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    out = cli("dataset", "update", "intents", "--file", str(path))
    assert out.returncode != 0
    assert out.error_line.startswith("error: ") and message in out.error_line
    assert "Traceback" not in out.stderr
    assert str(path) in out.error_line or name == "missing" and "missing" in out.error_line
    assert head(workspace) == existing
    assert len(cli("dataset", "show", "intents").json["commits"]) == 1
    assert subprocess.run(["git", "-C", str(workspace), "status", "--porcelain"], capture_output=True, text=True).stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "IMAGES"], "dataset type 'IMAGES' unknown"),
        (["--type", "TEXT_INTENT", "--tag", "novalue"], "tag 'novalue': expected key=value"),
    ],
)
def test_bad_create_options_are_rejected(cli, workspace, good, args, message):
    out = cli("dataset", "create", "x", "--file", str(good), *args)
    assert out.returncode != 0 and message in out.error_line
    assert not (workspace / "data").exists()


@pytest.mark.parametrize("name", ["../x", "/etc", "a/b", "", "1", "a b"])
def test_names_that_could_escape_or_clash_with_ids_are_rejected(cli, workspace, good, name):
    out = cli("dataset", "create", name, "--type", "TEXT_INTENT", "--file", str(good))
    assert out.returncode != 0 and "dataset name" in out.error_line
    assert cli("dataset", "list").json == []


def test_duplicate_name_is_rejected(cli, workspace, good, existing):
    out = cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(good))
    assert out.returncode != 0 and "already exists" in out.error_line
    assert head(workspace) == existing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dataset", "show", "nope"], "dataset 'nope' not found"),
        (["dataset", "prepare", "intents", "--commit", "9"], "has no commit 9"),
        (["dataset", "prepare", "intents", "--commit", "x"], "--commit 'x'"),
        (["dataset", "fetch", "intents", "hashBA=="], "selects commit 2"),
        (["dataset", "fetch", "intents", "bogus"], "version hash 'bogus'"),
        (["dataset", "fetch", "intents", "hash"], "selects no commits"),
    ],
)
def test_unknown_ids_and_hashes_give_clear_errors(cli, existing, args, message):
    out = cli(*args)
    assert out.returncode != 0 and message in out.error_line
    assert "Traceback" not in out.stderr


def test_generic_dataset_rejects_a_directory_as_a_file(cli, workspace, tmp_path):
    out = cli("dataset", "create", "raw", "--type", "GENERIC", "--file", str(tmp_path))
    assert out.returncode != 0 and "not a regular file" in out.error_line
    assert list(workspace.iterdir()) == []  # rejected before the workspace was even initialised


def test_prepare_with_a_tag_no_commit_carries_is_an_error(cli, workspace, existing):
    out = cli("dataset", "prepare", "intents", "--tag", "nosuch=1")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [out.error_line]
    assert out.error_line == "error: --tag 'nosuch=1': no commit of dataset 1 (intents) carries this tag; nothing to prepare"
    assert head(workspace) == existing


def test_a_huge_bad_version_hash_is_cut_short_in_the_error(cli, existing):
    bogus = "hash" + "A" * 20_000
    out = cli("dataset", "fetch", "intents", bogus)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [out.error_line]
    assert out.error_line.startswith("error: version hash 'hashAAAA") and "…' (20004 characters)" in out.error_line
    assert len(out.error_line) < 200
