"""The CLI for people: an example in every command's --help, tables for list/show commands
(`--format table`, the default on a terminal), JSON whenever stdout is piped."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import click
import pytest

from conftest import run_cli

BIN = Path(sys.executable).parent


def all_commands() -> list[str]:
    """Every command path (`dataset list`, `serve`, ...) of the real command tree."""
    from miniautoml.cli.main import cli

    ctx = click.Context(cli)
    found: list[str] = []

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), [*path, name])
        else:
            found.append(" ".join(path))

    walk(cli, [])
    return found


def test_the_command_tree_is_walked_whole():
    commands = all_commands()
    assert {"dataset list", "train submit", "models show", "serve", "lab"} <= set(commands)


@pytest.mark.parametrize("command", all_commands())
def test_every_commands_help_ends_with_an_example_to_type(command: str):
    shown = subprocess.run([str(BIN / "miniautoml"), *command.split(), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    example = shown.stdout.split("Example", 1)[-1]
    assert "Example" in shown.stdout and "$ miniautoml" in example, shown.stdout


@pytest.fixture
def with_dataset(workspace: Path, tmp_path: Path) -> Path:
    csv = tmp_path / "a.csv"
    csv.write_text("hello there,greet\nbye now,bye\n", encoding="utf-8")
    assert run_cli(workspace, "dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(csv)).returncode == 0
    return workspace


def test_list_as_a_table_has_a_header_and_a_row_per_record(with_dataset: Path):
    shown = run_cli(with_dataset, "dataset", "list", "--format", "table")
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()
    assert header.split()[:3] == ["DATASET_ID", "NAME", "DATASET_TYPE"]
    assert row.split()[:3] == ["1", "intents", "TEXT_INTENT"]


def test_show_as_a_table_has_a_line_per_field_and_its_lists_as_tables(with_dataset: Path):
    shown = run_cli(with_dataset, "dataset", "show", "intents", "--format", "table")
    lines = shown.stdout.splitlines()
    assert lines[1].split() == ["name", "intents"]
    assert "commits:" in lines and lines[lines.index("commits:") + 1].split()[:2] == ["DATASET_ID", "COMMIT_ID"]


def test_piped_output_stays_json(with_dataset: Path):
    assert json.loads(run_cli(with_dataset, "dataset", "list").stdout)[0]["name"] == "intents"
    assert json.loads(run_cli(with_dataset, "dataset", "list", "--format", "json").stdout)[0]["name"] == "intents"


def test_a_terminal_gets_the_table_unless_json_is_asked_for(with_dataset: Path):
    def on_terminal(*args: str) -> str:
        leader, follower = pty.openpty()
        proc = subprocess.run([str(BIN / "miniautoml"), "-w", str(with_dataset), "dataset", "list", *args],
                              stdout=follower, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=120)
        os.close(follower)
        assert proc.returncode == 0, proc.stderr
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        return b"".join(chunks).decode()

    assert on_terminal().startswith("DATASET_ID")
    assert json.loads(on_terminal("--format", "json"))[0]["name"] == "intents"


def test_format_is_refused_where_there_is_no_table(workspace: Path):
    shown = run_cli(workspace, "init", "--format", "table")
    assert shown.returncode == 2 and "No such option '--format'" in shown.stderr
