"""The job state machine as plain functions: queuing → launch → running → succeed | failure.

Every backend reports how a job's process ended as an `Exit`; `ending` turns it into the
`Ending` the job is recorded with (MLflow status, exit code, one-line message). Nothing here
starts a process, reads a file or talks to MLflow: callers pass what they read, so each rule is
a plain function of its inputs.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, replace

# The book's statuses and what MLflow says of a run that ended.
QUEUING, LAUNCH, RUNNING, SUCCEED, FAILURE = "queuing", "launch", "running", "succeed", "failure"
STATUSES = (QUEUING, LAUNCH, RUNNING, SUCCEED, FAILURE)
TERMINAL = (SUCCEED, FAILURE)
MLFLOW_TERMINAL = ("FINISHED", "FAILED", "KILLED")
# Ray Jobs' statuses that end a job
RAY_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def phase(mlflow_status: str, claimed: bool) -> str:
    """The book's status of a job run: SCHEDULED is queuing, or launch once a runner (or Ray)
    `claimed` it; RUNNING running; FINISHED succeed; FAILED/KILLED failure."""
    if mlflow_status == "SCHEDULED":
        return LAUNCH if claimed else QUEUING
    if mlflow_status == "RUNNING":
        return RUNNING
    return SUCCEED if mlflow_status == "FINISHED" else FAILURE


def describe(status: str, mlflow_status: str, message: str | None, position: int | None) -> str:
    """The status line shown with `status`: the recorded `message` once there is one, the queue
    `position` (0: next) while queuing."""
    if status == QUEUING:
        return "waiting for a runner" if position is None else f"{position} job(s) ahead" if position else "next to launch"
    if status == LAUNCH:
        return "launching the trainer"
    if status == RUNNING:
        return message or "training"
    if status == SUCCEED:
        return message or "finished"
    return message or ("killed" if mlflow_status == "KILLED" else "failed")


def signal_name(returncode: int) -> str:
    """SIGKILL for -9 (a negative returncode is the signal that ended a process)."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


@dataclass(frozen=True)
class Exit:
    """How a job's process ended, as its backend saw it.

    `returncode`: `mlflow run`'s (negative: its process group got that signal); `trainer_status`:
    the trainer's shell status (128+N: signal N), None when it never started; `stopped_by`: the
    signal that stopped the runner while the job ran (its runner ended it), else None;
    `last_line`: the most telling line of the job's stderr ("" if none)."""

    returncode: int
    trainer_status: int | None = None
    stopped_by: int | None = None
    last_line: str = ""


@dataclass(frozen=True)
class Ending:
    """What a job's run is ended with. `check_model`: training succeeded and the model version
    the trainer registered decides (see `registered`)."""

    mlflow_status: str  # FINISHED | FAILED | KILLED
    exit_code: int
    message: str | None = None
    check_model: bool = False
    model_version: str | None = None


def failure_message(returncode: int | None, last: str, *, cancelled: bool = False,
                    trainer_status: int | None = None) -> str:
    """One line on how a job failed; `last` is its last telling stderr line. Without a
    returncode (the process is gone unseen), just that line."""
    if returncode is None:
        return last
    if cancelled:
        return "cancelled by user"
    if returncode < 0:
        head, sep = f"job killed by {signal_name(returncode)}", "; last stderr line: "
    elif trainer_status is not None and trainer_status > 128:
        head, sep = f"trainer killed by {signal_name(128 - trainer_status)}", "; last stderr line: "
    elif trainer_status is not None and trainer_status > 0:
        head, sep = f"training failed (trainer exit code {trainer_status})", ": "
    elif trainer_status == 0:
        head, sep = f"mlflow run failed after the trainer succeeded (exit code {returncode})", ": "
    else:  # the trainer never started (or the MLproject did not use the runner's wrapper)
        head, sep = f"mlflow run failed (exit code {returncode})", ": "
    return f"{head}{sep}{last}" if last else head


def ending(exit: Exit, mlflow_status: str, cancelled: bool) -> Ending:
    """How to record a job whose process ended: `mlflow_status` is its run's status now (the
    trainer may have ended it already), `cancelled` whether a cancel was asked for."""
    code = exit.returncode if exit.trainer_status is None else exit.trainer_status
    if exit.returncode == 0 and mlflow_status in ("FINISHED", "RUNNING", "SCHEDULED") and not cancelled:
        return Ending("FINISHED", code, check_model=True)
    if exit.stopped_by is not None:
        message = f"runner stopped by {signal_name(-exit.stopped_by)} while the job ran"
    else:
        message = failure_message(exit.returncode, exit.last_line, cancelled=cancelled,
                                  trainer_status=exit.trainer_status)
    killed = cancelled or exit.stopped_by is not None or exit.returncode < 0 or (exit.trainer_status or 0) > 128
    return Ending("KILLED" if killed else "FAILED", code, message)


def registered(end: Ending, model_name: str | None, version: str | None, problem: str | None = None) -> Ending:
    """A trained job's ending once its model version is known: succeed with `version`; failure
    when the trainer registered none of `model_name` (or reading it failed: `problem`). A job
    without a model name registers nothing and succeeds."""
    if not end.check_model:
        return end
    if not model_name:
        return replace(end, check_model=False)
    if version is not None:
        return replace(end, check_model=False, model_version=version)
    why = problem or f"training finished but registered no version of model {model_name!r}"
    return replace(end, mlflow_status="FAILED", check_model=False, message=why)


def orphan_message(runner_pid: int | None, started: bool, cancelled: bool, last: str) -> tuple[str, str]:
    """(message, MLflow status) of a job that died with its runner, unseen: `started` when the
    trainer had turned the run RUNNING."""
    if cancelled:
        return "cancelled by user", "KILLED"
    where = "while the job was running" if started else "before the trainer started"
    message = f"the job's runner (pid {runner_pid if runner_pid else '?'}) died {where}"
    return (f"{message}; last stderr line: {last}" if last else message), "FAILED"


def ray_exit(ray_status: str, driver_exit_code: object, last_line: str = "") -> Exit:
    """The `Exit` of a Ray job that Ray reports ended: SUCCEEDED exits 0; otherwise its driver's
    exit code when Ray knows a positive one, else 1."""
    if ray_status == "SUCCEEDED":
        return Exit(0, last_line=last_line)
    code = driver_exit_code if isinstance(driver_exit_code, int) and driver_exit_code > 0 else 1
    return Exit(code, last_line=last_line)


def ray_phase(ray_status: str, claimed_status: str) -> str:
    """A Ray job's status before its run turns RUNNING: launch while Ray has it PENDING, running
    once Ray RUNs its driver (the trainer is starting)."""
    return RUNNING if claimed_status == LAUNCH and ray_status == "RUNNING" else claimed_status
