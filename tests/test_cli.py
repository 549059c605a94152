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
