"""A SIGKILLed runner does not stall the queue: its supervisor (jobs/supervisor.py) starts the next
runner at once, which follows the job left training and then runs the queue, with no command.

Real runners and trainers; readiness is polled. The bounds (30 s from a death to the next job
RUNNING) are generous for the 10 s the platform promises on a loaded machine.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import CLINC, csv_slice, job_cli, job_settings, new_job_workspace, stop_job_processes, wait_until
from test_jobs import LONG_JOB, job_record, mlflow_run, recorded, training_started

from miniautoml.jobs import slots
from miniautoml.processes import ProcessRef

pytestmark = pytest.mark.slow
TAKEOVER_BOUND = 30.0  # seconds; the promise is 10


@pytest.fixture
def job_ws(tmp_path: Path, mlflow_template: Path):
    ws = new_job_workspace(tmp_path, mlflow_template)
    yield ws
    stop_job_processes(ws)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return csv_slice(CLINC / "demo-part1.csv", tmp_path / "data.csv", 300)


def submit(ws: Path, data: Path, *params: str) -> str:
    result = job_cli(ws, "train", "submit", "--data-path", str(data), "--model-name", "m", *params)
    assert result.returncode == 0, result.stderr
    return result.json["job_id"]


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def queue_behind_a_training_job(ws: Path, data: Path) -> tuple[str, str, ProcessRef]:
    """A long job training and one queued behind it (one runner slot); and their runner."""
    first, second = submit(ws, data, *LONG_JOB), submit(ws, data, "-P", "epochs=1")
    wait_until(lambda: training_started(ws, first), 240, "the first job to train")
    assert mlflow_run(ws, second).info.status == "SCHEDULED"
    return first, second, ProcessRef.decode(job_record(ws, first)["runner"])


def running(ws: Path, job_id: str) -> bool:
    """Read from MLflow directly: no CLI call, which could itself start a runner."""
    return mlflow_run(ws, job_id).info.status in ("RUNNING", "FINISHED")


def test_a_queued_job_starts_soon_after_its_runner_and_the_job_before_it_were_sigkilled(job_ws: Path, data: Path):
    """The runner and its running job die together (the OOM killer's way): within seconds a new
    runner records the dead job failed and starts the queued one."""
    first, second, runner = queue_behind_a_training_job(job_ws, data)
    group = ProcessRef.decode(job_record(job_ws, first)["process"]).pid
    os.kill(runner.pid, signal.SIGKILL)
    os.killpg(group, signal.SIGKILL)
    died = time.monotonic()
    wait_until(lambda: running(job_ws, second), TAKEOVER_BOUND, "the queued job to run", interval=0.1)
    print(f"queued job RUNNING {time.monotonic() - died:.1f}s after its runner died")
    assert mlflow_run(job_ws, first).info.status == "FAILED"
    assert f"runner (pid {runner.pid}) died" in mlflow_run(job_ws, first).data.tags["miniautoml.message"]


def test_a_sigkilled_runner_is_replaced_and_follows_its_job_then_the_queue(job_ws: Path, data: Path):
    """Only the runner dies: its job trains on; a new runner takes the slot and that job over
    within seconds, records its end, then runs the queued job, with no command in between."""
    first, second, runner = queue_behind_a_training_job(job_ws, data)
    os.kill(runner.pid, signal.SIGKILL)

    def new_runner() -> ProcessRef | None:
        ref = ProcessRef.decode(job_record(job_ws, first).get("runner"))
        return ref if ref is not None and ref.pid != runner.pid and ref.alive() else None

    successor = wait_until(new_runner, TAKEOVER_BOUND, "a new runner to take the job over")
    assert [r.pid for r in slots.live_runners(job_settings(job_ws))] == [successor.pid]
    wait_until(lambda: recorded(job_ws, second), 240, "the queued job to be run to its end")
    assert mlflow_run(job_ws, first).info.status == "FINISHED" and recorded(job_ws, first)
    assert mlflow_run(job_ws, second).info.status == "FINISHED"
    assert ProcessRef.decode(job_record(job_ws, second)["runner"]).pid == successor.pid


def test_a_runner_that_stops_on_sigterm_is_not_replaced(job_ws: Path, data: Path):
    """SIGTERM asks the runner to stop (`train runner --stop`): it ends its job, and its
    supervisor ends with it rather than starting another."""
    first, second, runner = queue_behind_a_training_job(job_ws, data)
    supervisor = ProcessRef.of(parent_pid(runner.pid))
    os.kill(runner.pid, signal.SIGTERM)
    wait_until(lambda: supervisor.alive() is False, 60, "the supervisor to exit")
    assert slots.live_runners(job_settings(job_ws)) == []
    assert mlflow_run(job_ws, second).info.status == "SCHEDULED"
    assert mlflow_run(job_ws, first).data.tags["miniautoml.message"] == "runner stopped by SIGTERM while the job ran"
