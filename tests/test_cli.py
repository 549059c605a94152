"""The CLI's contract: JSON on stdout, one `error:` line on stderr, never a traceback."""

import os
import subprocess

import pytest

from conftest import BIN, run_cli


def test_an_unforeseen_failure_is_one_line_not_a_traceback(cli, workspace):
    # an MLflow tracking server that does not answer: the MLflow client raises its own exception
    out = cli("runs", "show", "abc", env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    assert out.returncode != 0
    assert out.error_line.startswith("error: ") and "Traceback" not in out.stderr


def test_help_lists_every_command_group(cli):
    out = cli("--help")
    assert out.returncode == 0
    for group in ("dataset", "train", "runs", "models", "serve", "predict", "bento", "lab", "up", "down", "status", "init"):
        assert group in out.stdout


def test_configuring_mlflow_for_one_workspace_does_not_leak_into_the_next(tmp_path, monkeypatch):
    import os

    from miniautoml.adapters.mlflow import configure
    from miniautoml.config import load_settings

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure(load_settings(tmp_path / "a"))
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert str(tmp_path / "b") in load_settings(tmp_path / "b").tracking_uri


def test_version_prints_the_package_version(cli):
    from importlib.metadata import version

    out = cli("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"miniautoml {version('miniautoml')}\n"


# --- outside a workspace: one line, exit 2, nothing created ---------------------------------
@pytest.mark.parametrize(
    "args",
    [["dataset", "list"], ["dataset", "create", "d", "--type", "TEXT_INTENT", "--file", __file__],
     ["train", "list"], ["runs", "list"], ["models", "list"], ["bento", "list"], ["status"], ["down"]],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_missing_workspace_directory_is_an_error(tmp_path, args):
    missing = tmp_path / "nonexistent"
    out = run_cli(missing, *args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [out.error_line]
    assert out.error_line == f"error: workspace {missing} (-w): no such directory; make one with `miniautoml init {missing}`"
    assert not missing.exists()


def test_a_directory_that_is_not_a_workspace_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a workspace")
    out = run_cli(tmp_path, "train", "list")
    assert out.returncode == 2 and out.stdout == ""
    assert out.error_line.startswith(f"error: workspace {tmp_path} (-w): not a miniautoml workspace")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_command_run_outside_any_workspace_creates_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MINIAUTOML_WORKSPACE", "MLFLOW_TRACKING_URI")}
    proc = subprocess.run([str(BIN / "miniautoml"), "train", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: not in a miniautoml workspace: {tmp_path} has no .miniautoml/")
    assert list(tmp_path.iterdir()) == []  # no ./.miniautoml/mlflow.db


def test_help_and_version_work_outside_a_workspace(tmp_path):
    assert run_cli(tmp_path / "nonexistent", "--version").returncode == 0
    out = run_cli(tmp_path / "nonexistent", "dataset", "list", "--help")
    assert out.returncode == 0 and "Usage: miniautoml dataset list" in out.stdout


def test_init_makes_a_missing_directory_a_workspace(tmp_path):
    ws = tmp_path / "new" / "ws"
    out = run_cli(ws, "init")
    assert out.returncode == 0, out.stderr
    assert (ws / ".dvc").is_dir()
    assert run_cli(ws, "dataset", "list").json == []


def test_an_error_line_never_echoes_a_huge_value_whole(cli):
    # a message that echoes a value whole (here the job id) is still bounded by the CLI
    out = cli("train", "status", "x" * 20_000)
    assert out.returncode == 2
    assert out.error_line.startswith("error: job 'xxxx") and " … " in out.error_line
    assert len(out.error_line) <= 510


def test_a_real_import_error_inside_a_command_module_is_not_no_such_command(monkeypatch):
    import importlib

    import click

    from miniautoml.cli import main as cli_main

    def fake_import(name):
        if name == "miniautoml.cli.runs":
            raise ModuleNotFoundError("No module named 'some_dependency'", name="some_dependency")
        if name == "miniautoml.cli.lab":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return importlib.import_module(name)

    monkeypatch.setattr(cli_main.importlib, "import_module", fake_import)
    group = cli_main.LazyGroup()
    ctx = click.Context(group)
    assert group.get_command(ctx, "lab") is None  # our own command module missing: no such command
    with pytest.raises(ModuleNotFoundError, match="some_dependency"):
        group.get_command(ctx, "runs")
