"""The CLI's contract: JSON on stdout, one `error:` line on stderr, never a traceback."""


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
