"""Warm job starts (jobs/warm.py): the runner preloads the trainer, forks each job through the
MLflow Projects API, and waits idle for the next job instead of exiting.

Jobs run for real through `miniautoml train submit`; a cold workspace (`MINIAUTOML_WARM_START=0`,
runners exit when the queue is empty: the path before warm starts) is the reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CLINC, csv_slice, job_cli, job_settings, new_job_workspace, stop_job_processes, wait_until
from test_jobs import job_record, mlflow_run

from miniautoml.config import PROJECT_ROOT
from miniautoml.jobs.warm import TRAINER, trainer_args
from miniautoml.processes import ProcessRef

COLD = {"MINIAUTOML_WARM_START": "0", "MINIAUTOML_RUNNER_IDLE_SECONDS": "0"}
WARM = {"MINIAUTOML_RUNNER_IDLE_SECONDS": "600"}


@dataclass
class Jobs:
    warm_ws: Path
    cold_ws: Path
    ids: dict[str, str]  # cold; then first, broken, second (warm, one runner)
    results: dict[str, dict]  # `train submit --wait` JSON of each


def submit_wait(ws: Path, data: Path, *params: str, env: dict[str, str] | None = None) -> dict:
    result = job_cli(ws, "train", "submit", "--data-path", str(data), "--model-name", "m", *params, "--wait",
                     "--timeout", "240", env=env, timeout=300)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return result.json


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Jobs:
    """Three jobs one after the other in a warm workspace (the second one's trainer raises), and
    one job in a cold workspace."""
    root = tmp_path_factory.mktemp("warm")
    warm_ws = new_job_workspace(root / "warm", mlflow_template)
    cold_ws = new_job_workspace(root / "cold", mlflow_template)
    data = csv_slice(CLINC / "demo-part1.csv", root / "slice.csv", 300)
    broken = root / "one_label.csv"
    broken.write_text("".join(f"example number {i},greeting\n" for i in range(40)), encoding="utf-8")
    try:
        results = {"cold": submit_wait(cold_ws, data, "-P", "epochs=1", env=COLD)}
        results |= {  # the runner waits long enough for each next job, and the tests after
            "first": submit_wait(warm_ws, data, "-P", "epochs=1", env=WARM),
            "broken": submit_wait(warm_ws, broken, "-P", "epochs=1", env=WARM),
            "second": submit_wait(warm_ws, data, "-P", "epochs=2", env=WARM),
        }
        yield Jobs(warm_ws, cold_ws, {k: v["job_id"] for k, v in results.items()}, results)
    finally:
        stop_job_processes(warm_ws)
        stop_job_processes(cold_ws)


def trainer_json(ws: Path, job_id: str, tmp_path: Path) -> dict:
    """How the trainer ran, as it logged it (artifact job.json)."""
    from miniautoml.adapters import mlflow as mlflow_adapter

    client = mlflow_adapter.client(job_settings(ws))
    return json.loads(Path(client.download_artifacts(job_id, "job.json", str(tmp_path))).read_text())


def test_a_warm_job_is_an_mlflow_project_run_under_its_given_id(jobs: Jobs):
    run = mlflow_run(jobs.warm_ws, jobs.ids["first"])
    assert jobs.results["first"]["status"] == "succeed"
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.source.type"] == "PROJECT"
    assert run.data.tags["mlflow.source.name"] == str(PROJECT_ROOT)
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert run.data.tags["mlflow.project.backend"] == "local"
    assert jobs.results["first"]["metadata"]["model_version"] == "1"


def test_warm_and_cold_jobs_carry_the_same_mlflow_tags(jobs: Jobs):
    warm = mlflow_run(jobs.warm_ws, jobs.ids["first"]).data.tags
    cold = mlflow_run(jobs.cold_ws, jobs.ids["cold"]).data.tags
    assert {k for k in warm if k.startswith("mlflow.")} == {k for k in cold if k.startswith("mlflow.")}
    same = ("mlflow.source.type", "mlflow.source.name", "mlflow.project.entryPoint", "mlflow.project.backend",
            "mlflow.source.git.commit")
    assert {k: warm.get(k) for k in same} == {k: cold.get(k) for k in same}


def test_the_warm_trainer_runs_as_python_m_would(jobs: Jobs, tmp_path: Path):
    """Same argv, cwd and job id as the cold trainer's; a child of the job process (which leads
    the job's process group in `mlflow run`'s place), named in the job's record."""
    warm = trainer_json(jobs.warm_ws, jobs.ids["first"], tmp_path / "warm")
    cold = trainer_json(jobs.cold_ws, jobs.ids["cold"], tmp_path / "cold")
    assert warm["argv"][0] == cold["argv"][0] and warm["argv"][0].endswith("training_code/train.py")
    assert warm["argv"][1:] == cold["argv"][1:]
    assert warm["cwd"] == cold["cwd"] == str(PROJECT_ROOT)
    assert warm["job_id"] == jobs.ids["first"] and warm["launched_by"] == "jobs service"
    record = job_record(jobs.warm_ws, jobs.ids["first"])
    assert warm["pid"] == ProcessRef.decode(record[TRAINER]).pid
    assert warm["parent_pid"] == ProcessRef.decode(record["process"]).pid
    assert TRAINER not in job_record(jobs.cold_ws, jobs.ids["cold"])  # cold: `mlflow run`'s own child


def test_an_idle_runner_takes_the_next_jobs(jobs: Jobs):
    runners = {ProcessRef.decode(job_record(jobs.warm_ws, i)["runner"]) for i in jobs.ids.values() if i != jobs.ids["cold"]}
    assert len(runners) == 1
    assert runners.pop().alive() is True  # still waiting for work


def test_a_crashing_trainer_fails_its_job_and_leaves_the_runner_serving(jobs: Jobs):
    broken = jobs.results["broken"]
    assert broken["status"] == "failure"
    assert broken["message"].startswith("training failed (trainer exit code 2): error: ")
    assert mlflow_run(jobs.warm_ws, jobs.ids["broken"]).info.status == "FAILED"
    assert jobs.results["second"]["status"] == "succeed"


def test_forked_jobs_keep_nothing_of_the_job_before(jobs: Jobs, tmp_path: Path):
    """After a job that trained 1 epoch and one whose trainer raised, the next job trains its own
    run with its own parameters and environment."""
    second = mlflow_run(jobs.warm_ws, jobs.ids["second"])
    assert second.data.params["epochs"] == "2"
    assert second.data.metrics["epochs_trained"] == pytest.approx(2)
    assert mlflow_run(jobs.warm_ws, jobs.ids["first"]).data.metrics["epochs_trained"] == pytest.approx(1)
    ran = trainer_json(jobs.warm_ws, jobs.ids["second"], tmp_path)
    assert ran["run_id"] == ran["job_id"] == jobs.ids["second"]
    assert "epochs=2" in " ".join(ran["argv"])
    assert jobs.results["second"]["metadata"]["model_version"] == "2"


def test_a_runner_with_no_idle_time_exits_when_the_queue_is_empty(jobs: Jobs):
    runner = ProcessRef.decode(job_record(jobs.cold_ws, jobs.ids["cold"])["runner"])
    wait_until(lambda: runner.alive() is False, 60, "the cold runner to exit", interval=0.2)


@pytest.mark.parametrize("command, args", [
    ("${MINIAUTOML_PYTHON:-python} -m training_code.train dataset_id='' model_name=m data.path=/d/x.csv "
     "--overrides='algorithm=intent-classification epochs=1'",
     ["dataset_id=", "model_name=m", "data.path=/d/x.csv", "--overrides=algorithm=intent-classification epochs=1"]),
    ("python -m training_code.train", []),
])
def test_the_mlproject_trainer_command_is_run_in_a_fork(command: str, args: list[str]):
    assert trainer_args(command) == args


@pytest.mark.parametrize("command", [
    "python -m training_code.train data.path=$HOME/x.csv",  # the shell would expand it
    "python -m training_code.train a=1 && rm -rf x",
    "python -m training_code.train_other a=1",
    "python train.py a=1",
    "${MINIAUTOML_PYTHON:-python} -m training_code.train a='unbalanced",
])
def test_any_other_command_goes_to_the_shell(command: str):
    assert trainer_args(command) is None
