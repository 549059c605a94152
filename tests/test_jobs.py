"""Training jobs: validation at submit, the FIFO queue, statuses, and every way a job can fail.

Jobs run for real: `miniautoml train submit` spawns a detached runner that launches `mlflow run`
on the MLproject. Failure tests kill real processes and check the job and its MLflow run end
terminal with a message, never stuck RUNNING.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from conftest import CLINC, csv_slice, job_cli, job_settings, new_job_workspace, stop_job_processes, wait_until

from miniautoml.jobs import cancel_job, job_status, list_jobs, submit_job
from miniautoml.jobs.runner import Runner
from miniautoml.processes import ProcessRef

def mlflow_run(workspace: Path, job_id: str):
    from miniautoml.adapters import mlflow as mlflow_adapter

    return mlflow_adapter.client(job_settings(workspace)).get_run(job_id)


def job_record(workspace: Path, job_id: str) -> dict:
    """The job's local record (processes, logs, launch time): `<ws>/.miniautoml/jobs/<id>.json`."""
    import json

    return json.loads((job_settings(workspace).state_dir / "jobs" / f"{job_id}.json").read_text())


def trainer_pid(job_id: str, workspace: Path | None = None) -> int | None:
    """The `python -m training_code.train` process of a job: named in its record when the runner
    forked it (warm start), else `miniautoml trainer <job id>` in ps, or before it named itself
    the process the runner tags MINIAUTOML_JOB_ID (cold start)."""
    if workspace is not None:
        ref = ProcessRef.decode(job_record(workspace, job_id).get("trainer"))
        if ref is not None:
            return ref.pid if ref.alive() else None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd[0] == f"miniautoml trainer {job_id}".encode():  # named itself (setproctitle)
            return int(entry.name)
        if b"training_code.train" in cmd and f"MINIAUTOML_JOB_ID={job_id}".encode() in env and b"-m" in cmd[:2]:
            return int(entry.name)
    return None


def training_started(workspace: Path, job_id: str) -> bool:
    """RUNNING with at least one epoch logged: the trainer is mid-run."""
    run = mlflow_run(workspace, job_id)
    return run.info.status == "RUNNING" and "loss" in run.data.metrics


@pytest.fixture
def job_ws(tmp_path: Path, mlflow_template: Path):
    ws = new_job_workspace(tmp_path, mlflow_template)
    yield ws
    stop_job_processes(ws)


@pytest.fixture
def bare_ws(tmp_path: Path) -> Path:
    """A workspace that is just a directory: no MLflow DB until something creates one."""
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    return csv_slice(CLINC / "demo-part1.csv", tmp_path / "tiny.csv", 300)


@pytest.fixture
def one_label_csv(tmp_path: Path) -> Path:
    """Valid CSV, but one label: the trainer raises after loading it."""
    path = tmp_path / "one_label.csv"
    path.write_text("".join(f"example number {i},greeting\n" for i in range(40)), encoding="utf-8")
    return path


# --- submit validation: one error line, non-zero exit, nothing queued -----------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["--version-hash", "hashAg==", "--model-name", "m"], "dataset missing"),
        (["--dataset", "1", "--model-name", "m"], "version hash missing"),
        (["--dataset", "1", "--version-hash", "hashAg=="], "model name missing"),
        (["--data-path", "{csv}"], "model name missing"),
        (["--data-path", "{csv}", "--model-name", "m", "--algorithm", "image-gan"], "algorithm 'image-gan': unknown"),
        (["--data-path", "{csv}", "--model-name", "m", "-P", "epochs"], "expected key=value"),
        (["--data-path", "{csv}", "--model-name", "m", "-P", "=3"], "expected key=value"),
        (["--data-path", "{csv}", "--model-name", "m", "-P", "no such key=1"], "is not a parameter name"),
        (["--data-path", "{csv}", "--model-name", "m", "-P", "epochz=3"], "epochz=3: not a training parameter"),
        (["--data-path", "{csv}", "--model-name", "m", "-P", "epoch=3"], "not a training parameter; did you mean epochs?"),
        (["--data-path", "{csv}", "--model-name", "m", "-P", "epochs=0"], "epochs=0: must be a positive integer"),
        (["--data-path", "{csv}", "--model-name", "m", "-P", "lr=fast"], "lr='fast': expected a number"),
        (["--data-path", "{csv}", "--model-name", "m", "-P", "model_name=x"], "give model_name with --model-name"),
        (["--data-path", "{csv}", "--model-name", "bad name!"], "model name 'bad name!'"),
        (["--data-path", "/nonexistent/x.csv", "--model-name", "m"], "no such file or directory"),
        (["--data-path", "{csv}", "--dataset", "1", "--version-hash", "hashAg==", "--model-name", "m"], "not both"),
        (["--dataset", "nosuch", "--version-hash", "hashAg==", "--model-name", "m"], "dataset 'nosuch' not found"),
    ],
)
def test_submit_rejects_bad_request_without_queueing(bare_ws: Path, tiny_csv: Path, args: list[str], message: str):
    result = job_cli(bare_ws, "train", "submit", *[a.replace("{csv}", str(tiny_csv)) for a in args])
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.error_line]
    assert result.error_line.startswith("error: ") and message in result.error_line
    assert not (bare_ws / ".miniautoml" / "mlflow.db").exists()  # MLflow untouched: nothing queued


@pytest.mark.parametrize("param, suggested", [("epoch=3", "epochs"), ("batchsize=8", "batch_size"),
                                              ("model.hiden_dim=3", "model.hidden_dim")])
def test_a_mistyped_param_gets_the_closest_key_not_a_list(bare_ws: Path, tiny_csv: Path, param: str, suggested: str):
    result = job_cli(bare_ws, "train", "submit", "--data-path", str(tiny_csv), "--model-name", "m", "-P", param)
    assert result.returncode == 2
    assert result.error_line == f"error: {param}: not a training parameter; did you mean {suggested}?"


def test_a_param_like_no_key_lists_the_keys_whole(bare_ws: Path, tiny_csv: Path):
    result = job_cli(bare_ws, "train", "submit", "--data-path", str(tiny_csv), "--model-name", "m", "-P", "xyz=1")
    assert result.returncode == 2
    assert "…" not in result.error_line  # not cut mid-word by the error line's length limit
    assert ", epochs, " in result.error_line and "model.*" in result.error_line


@pytest.mark.parametrize(
    "param, message",
    [
        ("lr=nan", "lr='nan': expected a finite number"),
        ("lr=inf", "lr='inf': expected a finite number"),
        ("lr=1e400", "lr='1e400': expected a finite number"),  # overflows to inf
        ("seed=abc", "seed='abc': expected a whole number"),
        ("seed=1.5", "seed='1.5': expected a whole number"),
        ("+x=1", "+x=1: not a training parameter"),  # Hydra would add the key
        ("hydra.run.dir={tmp}/made-by-hydra", "hydra.run.dir={tmp}/made-by-hydra: not a training parameter"),
        ("model=nosuch", "model='nosuch': unknown; expected one of book, fasttext"),
    ],
)
def test_submit_accepts_only_documented_finite_params_and_creates_no_job(
    job_ws: Path, tiny_csv: Path, tmp_path: Path, param: str, message: str
):
    param, message = param.replace("{tmp}", str(tmp_path)), message.replace("{tmp}", str(tmp_path))
    result = job_cli(job_ws, "train", "submit", "--data-path", str(tiny_csv), "--model-name", "m", "-P", param)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.error_line]
    assert result.error_line.startswith(f"error: {message}")
    assert list_jobs(job_settings(job_ws)) == []
    assert not (tmp_path / "made-by-hydra").exists()


def test_documented_params_come_from_the_config_files():
    from miniautoml.contract.params import documented_params

    documented = documented_params()
    # params/algorithms/ holds the algorithms' declarations, not a Hydra config group; more
    # algorithms add options to `model`.
    groups = {g: o for g, o in documented.groups.items() if g != "algorithms"}
    assert {g: o for g, o in groups.items() if g != "model"} == {"data": ("default",), "optimizer": ("adam", "sgd")}
    assert {"book", "fasttext"} <= set(groups["model"])
    assert {"epochs", "batch_size", "seed", "patience", "lr", "optimizer.momentum", "model.tokenizer.ngrams",
            "data.limit"} <= set(documented.defaults)
    assert not any(key.startswith("hydra") for key in documented.defaults)


@pytest.mark.parametrize(
    "override, message",
    [("+x=1", "^x: not a training parameter"), ("lr=1e400", "^lr=inf: expected a finite number"),
     ("seed=abc", "^seed=.abc.: expected a whole number")],
)
def test_the_trainer_rejects_what_submit_rejects(override: str, message: str):
    """The trainer composes its own config (`mlflow run` bypasses submit): the same check applies."""
    from miniautoml.contract.params import ParamError, validate_params
    from training_code.train import load_config

    with pytest.raises(ParamError, match=message):
        validate_params(load_config(["data.path=x.csv", override]))


def test_dataset_request_passes_the_training_config_check():
    """Base64 version hashes end in '=': the check must pass them whole to Hydra."""
    from miniautoml.algorithms import get_algorithm
    from miniautoml.datasets.version_hash import parse
    from miniautoml.jobs.requests import JobRequest, _check_training_config

    request = JobRequest(model_name="m", dataset_id="1", version_hash=parse("hashAg=="), params={"epochs": "2"})
    _check_training_config(request, get_algorithm(request.algorithm))


def test_unknown_job_id_is_a_clear_error(job_ws: Path):
    result = job_cli(job_ws, "train", "status", "0123456789abcdef0123456789abcdef")
    assert result.returncode == 2
    assert result.error_line == "error: job '0123456789abcdef0123456789abcdef' not found"


def test_malformed_job_id_is_a_clear_error(job_ws: Path):
    result = job_cli(job_ws, "train", "wait", "not-a-job")
    assert result.returncode == 2
    assert "job 'not-a-job' not found" in result.error_line


# --- the queue (jobs queued in-process without a runner) ---------------------------------------
def queue_jobs(ws: Path, data: Path, n: int) -> list[str]:
    """`n` queued jobs that stay queued: no runner slots (a free slot gets a runner started)."""
    (ws / "miniautoml.toml").write_text("[jobs]\nmax_runners = 0\n", encoding="utf-8")
    settings = job_settings(ws)
    return [submit_job(settings, model_name="m", data_path=str(data), params={"epochs": "1"}, start_runner=False)
            for _ in range(n)]


@pytest.fixture(scope="module")
def queued_three(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> tuple[Path, list[str], dict]:
    """Read-only: three queued jobs nobody runs, and `train list` of them."""
    root = tmp_path_factory.mktemp("queue")
    ws = new_job_workspace(root, mlflow_template)
    ids = queue_jobs(ws, csv_slice(CLINC / "demo-part1.csv", root / "tiny.csv", 50), 3)
    result = job_cli(ws, "train", "list")
    assert result.returncode == 0, result.stderr
    return ws, ids, {j["job_id"]: j for j in result.json}


def test_queued_jobs_report_fifo_positions(queued_three):
    _, ids, listed = queued_three
    assert [listed[i]["status"] for i in ids] == ["queuing"] * 3
    assert [listed[i]["position_in_queue"] for i in ids] == [0, 1, 2]


def test_jobs_are_named_by_submission_order(queued_three):
    _, ids, listed = queued_three
    assert [listed[i]["metadata"]["run_name"] for i in ids] == ["training job 1", "training job 2", "training job 3"]


def test_queued_job_is_a_scheduled_mlflow_run_holding_the_request(queued_three):
    ws, ids, _ = queued_three
    run = mlflow_run(ws, ids[0])
    assert run.info.status == "SCHEDULED"
    assert run.info.run_name == "training job 1"
    assert run.data.tags["miniautoml.model_name"] == "m"
    assert run.data.tags["miniautoml.algorithm"] == "intent-classification"
    assert json.loads(run.data.tags["miniautoml.params"]) == {"epochs": "1"}
    assert run.data.tags["miniautoml.data_path"].endswith("tiny.csv")


def test_queued_job_records_its_algorithm_and_launches_its_entry_point(queued_three):
    """The default algorithm's declaration (params/algorithms/) picks the entry point; the
    trainer gets the algorithm before the user's -P overrides."""
    from miniautoml.jobs.runner import launch_command

    ws, ids, listed = queued_three
    assert listed[ids[0]]["metadata"]["algorithm"] == "intent-classification"
    run = mlflow_run(ws, ids[0])
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    cmd = launch_command(run)
    assert cmd[cmd.index("-e") + 1] == "train"
    assert "overrides=algorithm=intent-classification epochs=1" in cmd


def test_cancelling_a_queued_job_fails_it_and_moves_the_queue_up(job_ws: Path, tiny_csv: Path):
    ids = queue_jobs(job_ws, tiny_csv, 3)
    cancelled = job_cli(job_ws, "train", "cancel", ids[1])
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.json["status"] == "failure"
    assert cancelled.json["message"] == "cancelled before launch"
    assert mlflow_run(job_ws, ids[1]).info.status == "KILLED"
    assert job_status(job_settings(job_ws), ids[2]).position_in_queue == 1


def test_list_filters_by_status(job_ws: Path, tiny_csv: Path):
    ids = queue_jobs(job_ws, tiny_csv, 3)
    cancel_job(job_settings(job_ws), ids[0])
    listed = job_cli(job_ws, "train", "list", "--status", "queuing").json
    assert [j["job_id"] for j in listed] == [ids[2], ids[1]]  # newest first


def test_runner_claims_jobs_in_submission_order(job_ws: Path, tiny_csv: Path):
    settings = job_settings(job_ws)
    ids = queue_jobs(job_ws, tiny_csv, 3)
    runner = Runner(settings)
    claimed = [runner.claim_next().info.run_id for _ in range(3)]
    assert claimed == ids
    assert runner.claim_next() is None
    assert {job_status(settings, i).status for i in ids} == {"launch"}


# --- success ------------------------------------------------------------------------------------
def test_submit_wait_prints_the_final_status(trained_job):
    out = trained_job.result.json
    assert out["job_id"] == trained_job.job_id
    assert out["status"] == "succeed"
    assert out["message"].startswith("test accuracy 0.")
    assert out["position_in_queue"] is None


def test_succeeded_job_run_is_finished_and_its_model_registered(trained_job):
    run = mlflow_run(trained_job.workspace, trained_job.job_id)
    assert run.info.status == "FINISHED"
    status = job_cli(trained_job.workspace, "train", "status", trained_job.job_id).json
    assert status["metadata"]["model_version"] == "1"
    assert status["metadata"]["exit_code"] == 0


def test_job_internals_stay_out_of_the_run_tags(trained_job):
    """Pids, paths and the launch time are in the job's record (and its `job-runner.json`
    artifact), not among the tags the MLflow UI lists."""
    run = mlflow_run(trained_job.workspace, trained_job.job_id)
    internal = ("miniautoml.runner", "miniautoml.process", "miniautoml.log.", "miniautoml.launched_at")
    assert not [k for k in run.data.tags if k.startswith(internal)]
    record = job_record(trained_job.workspace, trained_job.job_id)
    assert {"runner", "process", "log_stdout", "log_stderr", "launched_at"} <= set(record)
    meta = job_cli(trained_job.workspace, "train", "status", trained_job.job_id).json["metadata"]
    assert meta["launched_at"] == record["launched_at"] and "T" in meta["launched_at"]
    artifacts = {f.path for f in mlflow_adapter_client(trained_job.workspace).list_artifacts(trained_job.job_id)}
    assert "job-runner.json" in artifacts


def mlflow_adapter_client(workspace: Path):
    from miniautoml.adapters import mlflow as mlflow_adapter

    return mlflow_adapter.client(job_settings(workspace))


def test_wait_on_a_finished_job_returns_at_once(trained_job):
    result = job_cli(trained_job.workspace, "train", "wait", trained_job.job_id, "--timeout", "60")
    assert result.returncode == 0
    assert result.json["status"] == "succeed"


def test_submit_wait_shows_epoch_progress_on_stderr(trained_job):
    """stdout stays the JSON result; stderr follows training epoch by epoch (epochs=2)."""
    lines = trained_job.result.stderr.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[:2] for line in epochs] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert all(" loss " in line and " val_accuracy " in line for line in epochs)
    assert trained_job.result.json["status"] == "succeed"


# --- a runner SIGKILLed mid-job ------------------------------------------------------------------
def runner_of(ws: Path, job_id: str) -> ProcessRef:
    return ProcessRef.decode(job_record(ws, job_id)["runner"])


def recorded(ws: Path, job_id: str) -> bool:
    """The job's end is recorded (by a runner or a status call), read without the jobs service."""
    return mlflow_run(ws, job_id).data.tags.get("miniautoml.job_state") == "done"


def kill_runner_mid_training(ws: Path, job_id: str) -> ProcessRef:
    """SIGKILL the runner of `job_id` once it trains, and its supervisor first (else it forks the
    next runner: tests/test_runner_supervision.py); its `mlflow run` goes on alone."""
    wait_until(lambda: training_started(ws, job_id), 120, "the trainer to finish an epoch", interval=0.2)
    runner = runner_of(ws, job_id)
    supervisor = int(Path(f"/proc/{runner.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert Path(f"/proc/{supervisor}/cmdline").read_bytes().startswith(b"miniautoml runner-supervisor")
    os.kill(supervisor, signal.SIGKILL)
    os.kill(runner.pid, signal.SIGKILL)
    wait_until(lambda: runner.alive() is False, 120, "the runner to be gone", interval=0.2)
    return runner


# Long enough (patience 0: no early stop) to be mid-training when its runner is killed.
LONG_JOB = ("-P", "epochs=60", "-P", "patience=0")


@pytest.mark.parametrize("trigger", ["status", "list"])
def test_reading_jobs_after_a_sigkilled_runner_starts_a_runner_for_the_queue(
    job_ws: Path, tiny_csv: Path, trigger: str
):
    first, second = (
        job_cli(job_ws, "train", "submit", "--data-path", str(tiny_csv), "--model-name", "m", *params).json["job_id"]
        for params in (LONG_JOB, ("-P", "epochs=1"))
    )
    dead = kill_runner_mid_training(job_ws, first)
    assert mlflow_run(job_ws, second).info.status == "SCHEDULED"  # nobody left to launch it

    read = job_cli(job_ws, "train", *(["status", second] if trigger == "status" else ["list"]))
    assert read.returncode == 0, read.stderr

    wait_until(lambda: recorded(job_ws, second), 240, "the queued job to be run", interval=0.2)
    assert mlflow_run(job_ws, second).info.status == "FINISHED"
    jobs = {job["job_id"]: job for job in job_cli(job_ws, "train", "list").json}
    assert jobs[second]["status"] == "succeed"
    assert jobs[second]["metadata"]["runner"]["pid"] != dead.pid
    assert jobs[first]["status"] == "succeed"  # adopted by the new runner, which saw it to its end
    assert {jobs[first]["metadata"]["model_version"], jobs[second]["metadata"]["model_version"]} == {"1", "2"}


def test_job_that_ends_after_its_runner_died_shows_its_registered_version(job_ws: Path, tiny_csv: Path):
    job_id = job_cli(job_ws, "train", "submit", "--data-path", str(tiny_csv), "--model-name", "m",
                     *LONG_JOB).json["job_id"]
    kill_runner_mid_training(job_ws, job_id)
    process = ProcessRef.decode(job_record(job_ws, job_id)["process"])
    wait_until(lambda: process.alive() is False, 240, "the orphaned `mlflow run` to end", interval=0.2)
    assert mlflow_run(job_ws, job_id).info.status == "FINISHED" and not recorded(job_ws, job_id)

    status = job_cli(job_ws, "train", "status", job_id).json
    assert status["status"] == "succeed"
    assert status["metadata"]["model_version"] == "1"
    assert recorded(job_ws, job_id)


# --- failures -----------------------------------------------------------------------------------
def test_job_whose_training_raises_ends_failure_with_the_error(job_ws: Path, one_label_csv: Path):
    result = job_cli(job_ws, "train", "submit", "--data-path", str(one_label_csv), "--model-name", "m",
                     "-P", "epochs=1", "--wait")
    assert result.returncode == 1
    out = result.json
    assert out["status"] == "failure"
    assert out["message"].startswith("training failed (trainer exit code 2): error: ")
    assert "need at least 2" in out["message"]
    assert mlflow_run(job_ws, out["job_id"]).info.status == "FAILED"


KILL_CASES = ("sigkill", "sigterm", "group", "runner", "cancel")


@pytest.fixture(scope="module")
def running_jobs(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path):
    """One long job per kill test, all mid-training at once (runner limit raised in the
    workspace's miniautoml.toml), so the kill tests share one start-up wait."""
    ws = new_job_workspace(tmp_path_factory.mktemp("kills"), mlflow_template)
    (ws / "miniautoml.toml").write_text(f"[jobs]\nmax_runners = {len(KILL_CASES)}\n", encoding="utf-8")
    settings = job_settings(ws)
    try:
        jobs = {case: submit_job(settings, model_name="m", data_path=str(CLINC / "demo-part1.csv"),
                                 params={"epochs": "500", "patience": "0"}) for case in KILL_CASES}
        for job_id in jobs.values():
            wait_until(lambda: training_started(ws, job_id), 240, "the trainer to finish an epoch", interval=0.2)
        yield ws, jobs
    finally:
        stop_job_processes(ws)


def test_sigkilled_trainer_ends_failure_and_killed(running_jobs):
    ws, jobs = running_jobs
    os.kill(wait_until(lambda: trainer_pid(jobs["sigkill"], ws), 120, "the trainer process", interval=0.2), signal.SIGKILL)
    result = job_cli(ws, "train", "wait", jobs["sigkill"], "--timeout", "120")
    assert result.returncode == 1
    assert result.json["status"] == "failure"
    assert result.json["message"].startswith("trainer killed by SIGKILL; last stderr line: epoch ")
    assert result.json["metadata"]["exit_code"] == 128 + signal.SIGKILL
    assert mlflow_run(ws, jobs["sigkill"]).info.status == "KILLED"


def test_sigtermed_trainer_ends_failure(running_jobs):
    ws, jobs = running_jobs
    os.kill(wait_until(lambda: trainer_pid(jobs["sigterm"], ws), 120, "the trainer process", interval=0.2), signal.SIGTERM)
    result = job_cli(ws, "train", "wait", jobs["sigterm"], "--timeout", "120")
    assert result.json["status"] == "failure"
    assert result.json["message"].startswith("trainer killed by SIGTERM")
    assert mlflow_run(ws, jobs["sigterm"]).info.status == "KILLED"


def test_sigkilled_job_process_group_is_not_left_running(running_jobs):
    """`mlflow run` and the trainer die together: MLflow alone would leave the run RUNNING."""
    ws, jobs = running_jobs
    group = job_status(job_settings(ws), jobs["group"]).metadata["process"]["pid"]
    os.killpg(group, signal.SIGKILL)
    result = job_cli(ws, "train", "wait", jobs["group"], "--timeout", "120")
    assert result.json["status"] == "failure"
    assert result.json["message"].startswith("job killed by SIGKILL")
    assert mlflow_run(ws, jobs["group"]).info.status == "KILLED"


def test_status_fails_a_job_whose_runner_died(running_jobs):
    ws, jobs = running_jobs
    meta = job_status(job_settings(ws), jobs["runner"]).metadata
    os.kill(meta["runner"]["pid"], signal.SIGKILL)  # the runner and its job die, e.g. OOM killer
    os.killpg(meta["process"]["pid"], signal.SIGKILL)
    wait_until(lambda: not ProcessRef(meta["process"]["pid"]).alive(), 120, "the job's processes to be gone", interval=0.2)
    result = job_cli(ws, "train", "status", jobs["runner"])
    assert result.json["status"] == "failure"
    assert f"runner (pid {meta['runner']['pid']}) died while the job was running" in result.json["message"]
    assert mlflow_run(ws, jobs["runner"]).info.status == "FAILED"


def test_cancelling_a_running_job_kills_it(running_jobs):
    ws, jobs = running_jobs
    cancelled = job_cli(ws, "train", "cancel", jobs["cancel"])
    assert cancelled.returncode == 0, cancelled.stderr
    result = job_cli(ws, "train", "wait", jobs["cancel"], "--timeout", "120")
    assert result.json["status"] == "failure"
    assert result.json["message"] == "cancelled by user"
    assert mlflow_run(ws, jobs["cancel"]).info.status == "KILLED"


def test_cancelling_a_finished_job_is_an_error(trained_job):
    result = job_cli(trained_job.workspace, "train", "cancel", trained_job.job_id)
    assert result.returncode == 2
    assert "already ended (succeed)" in result.error_line


# --- races -----------------------------------------------------------------------------------------
def test_status_of_a_launched_job_survives_a_cancel_race(job_ws: Path, tiny_csv: Path):
    """Cancel right after submit: the job ends failure whether or not the runner launched it."""
    settings = job_settings(job_ws)
    job_id = submit_job(settings, model_name="m", data_path=str(tiny_csv), params={"epochs": "1"})
    cancel_job(settings, job_id)
    result = job_cli(job_ws, "train", "wait", job_id, "--timeout", "120")
    assert result.json["status"] == "failure"
    assert result.json["message"] in ("cancelled before launch", "cancelled by user")
