"""Every process of a job is named for what it is in `ps` (setproctitle), warm or cold: an operator
finds the runner, the job and the trainer of a job id in /proc/<pid>/cmdline."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CLINC, csv_slice, job_cli, new_job_workspace, stop_job_processes, wait_until
from test_jobs import job_record, trainer_pid, training_started

from miniautoml.processes import ProcessRef

pytestmark = pytest.mark.slow


def title(pid: int) -> str:
    """What ps shows: the command line as /proc has it, its empty tail dropped."""
    return " ".join(part for part in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if part)


@pytest.fixture(scope="module", params=["warm", "cold"])
def training(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path):
    """A job mid-training, started warm (the runner forks it) or cold (`mlflow run`)."""
    root = tmp_path_factory.mktemp(request.param)
    ws = new_job_workspace(root, mlflow_template)
    env = {"MINIAUTOML_WARM_START": "0"} if request.param == "cold" else {}
    data = csv_slice(CLINC / "demo-part1.csv", root / "slice.csv", 300)
    try:
        submitted = job_cli(ws, "train", "submit", "--data-path", str(data), "--model-name", "m",
                            "-P", "epochs=500", "-P", "patience=0", env=env)
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.json["job_id"]
        wait_until(lambda: training_started(ws, job_id), 240, "the trainer to finish an epoch")
        yield request.param, ws, job_id
    finally:
        stop_job_processes(ws)


def test_the_trainer_is_named_by_its_job_id(training):
    _, ws, job_id = training
    pid = wait_until(lambda: trainer_pid(job_id, ws), 120, "the trainer process")
    assert title(pid) == f"miniautoml trainer {job_id}"


def test_the_runner_is_named_with_its_workspace(training):
    _, ws, job_id = training
    runner = ProcessRef.decode(job_record(ws, job_id)["runner"])
    assert title(runner.pid) == f"miniautoml runner {ws}"


def test_a_warm_job_process_is_named_by_its_job_id(training):
    """Cold, it is the `mlflow run` CLI (named by its own command line)."""
    start, ws, job_id = training
    process = ProcessRef.decode(job_record(ws, job_id)["process"])
    if start == "warm":
        assert title(process.pid) == f"miniautoml job {job_id}"
    else:
        assert " run " in f" {title(process.pid)} " and f"--run-id {job_id}" in title(process.pid)
