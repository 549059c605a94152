"""The job state machine (jobs/outcome.py) as plain functions: no process, no file, no MLflow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from miniautoml.jobs import outcome
from miniautoml.jobs.outcome import Ending, Exit


@pytest.mark.parametrize("mlflow_status, claimed, status", [
    ("SCHEDULED", False, "queuing"),
    ("SCHEDULED", True, "launch"),
    ("RUNNING", True, "running"),
    ("FINISHED", True, "succeed"),
    ("FAILED", True, "failure"),
    ("KILLED", False, "failure"),
])  # fmt: skip
def test_a_runs_status_and_claim_give_the_books_status(mlflow_status: str, claimed: bool, status: str):
    assert outcome.phase(mlflow_status, claimed) == status


@pytest.mark.parametrize("position, line", [(None, "waiting for a runner"), (0, "next to launch"), (2, "2 job(s) ahead")])
def test_a_queuing_job_says_its_place_in_the_queue(position: int | None, line: str):
    assert outcome.describe("queuing", "SCHEDULED", None, position) == line


def test_an_ended_job_says_its_recorded_message_else_how_it_ended():
    assert outcome.describe("succeed", "FINISHED", "test accuracy 0.9", None) == "test accuracy 0.9"
    assert outcome.describe("failure", "KILLED", None, None) == "killed"
    assert outcome.describe("failure", "FAILED", None, None) == "failed"


def test_a_clean_exit_succeeds_once_the_model_version_is_known():
    end = outcome.ending(Exit(0, trainer_status=0), "FINISHED", cancelled=False)
    assert end == Ending("FINISHED", 0, check_model=True)
    assert outcome.registered(end, "intent", "3") == Ending("FINISHED", 0, model_version="3")


def test_a_clean_exit_without_a_registered_version_fails_saying_so():
    end = outcome.registered(outcome.ending(Exit(0, 0), "RUNNING", cancelled=False), "intent", None)
    assert end.mlflow_status == "FAILED"
    assert end.message == "training finished but registered no version of model 'intent'"


def test_a_job_without_a_model_name_succeeds_without_a_version():
    end = outcome.registered(outcome.ending(Exit(0, 0), "FINISHED", cancelled=False), None, None)
    assert end == Ending("FINISHED", 0)


def test_a_trainer_error_fails_with_its_exit_code_and_last_stderr_line():
    end = outcome.ending(Exit(1, trainer_status=2, last_line="ValueError: bad"), "FAILED", cancelled=False)
    assert end == Ending("FAILED", 2, "training failed (trainer exit code 2): ValueError: bad")


def test_a_trainer_killed_by_a_signal_ends_killed_naming_it():
    end = outcome.ending(Exit(1, trainer_status=137, last_line="epoch 3"), "FAILED", cancelled=False)
    assert end == Ending("KILLED", 137, "trainer killed by SIGKILL; last stderr line: epoch 3")


def test_a_job_process_group_killed_ends_killed():
    end = outcome.ending(Exit(-9), "RUNNING", cancelled=False)
    assert (end.mlflow_status, end.message) == ("KILLED", "job killed by SIGKILL")


def test_a_cancelled_job_ends_killed_even_after_a_clean_exit():
    end = outcome.ending(Exit(0, 0), "FINISHED", cancelled=True)
    assert (end.mlflow_status, end.message, end.check_model) == ("KILLED", "cancelled by user", False)


def test_a_runner_stopped_while_its_job_ran_says_by_which_signal():
    end = outcome.ending(Exit(-15, stopped_by=15), "RUNNING", cancelled=False)
    assert (end.mlflow_status, end.message) == ("KILLED", "runner stopped by SIGTERM while the job ran")


def test_mlflow_run_failing_before_the_trainer_started_says_so():
    end = outcome.ending(Exit(1, last_line="No such entry point"), "SCHEDULED", cancelled=False)
    assert (end.mlflow_status, end.message) == ("FAILED", "mlflow run failed (exit code 1): No such entry point")


@pytest.mark.parametrize("started, where", [(False, "before the trainer started"), (True, "while the job was running")])
def test_a_job_that_died_with_its_runner_says_when(started: bool, where: str):
    assert outcome.orphan_message(41, started, False, "") == (f"the job's runner (pid 41) died {where}", "FAILED")
    assert outcome.orphan_message(41, started, True, "") == ("cancelled by user", "KILLED")


@pytest.mark.parametrize("ray_status, code, returncode", [("SUCCEEDED", None, 0), ("FAILED", 3, 3), ("FAILED", None, 1),
                                                          ("STOPPED", -15, 1)])
def test_a_ray_jobs_end_is_an_exit_like_a_local_one(ray_status: str, code: object, returncode: int):
    assert outcome.ray_exit(ray_status, code).returncode == returncode


def test_a_claimed_ray_job_is_running_once_ray_runs_its_driver():
    assert outcome.ray_phase("RUNNING", "launch") == "running"
    assert outcome.ray_phase("PENDING", "launch") == "launch"


def test_the_state_machine_imports_no_process_file_or_mlflow_module():
    tree = ast.parse(Path(outcome.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "signal"}
