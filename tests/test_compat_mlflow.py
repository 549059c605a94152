"""The patches of MLflow internals (miniautoml.compat.mlflow) and of CPython's exit
(miniautoml.compat.python), on the real MLflow and a real fork: each pin test fails when the
upstream code they rely on changes."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import JOB_ENV_DROP, new_job_workspace

from miniautoml import compat
from miniautoml.adapters import mlflow as mlflow_adapter
from miniautoml.compat import mlflow as compat_mlflow
from miniautoml.compat import python as compat_python
from miniautoml.config import load_settings
from miniautoml.jobs import warm

RUN_ID = "c" * 32
OUTSIDE = compat.guard("a patch pinned elsewhere", "mlflow<3", unpatched="as is")

# --------------------------------------------------------------------------------------------
# Client state: a fork drops it
# --------------------------------------------------------------------------------------------


def in_a_fork(probe) -> dict:
    """`probe()`'s JSON-ready answer, computed in a forked child of this process."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            os.write(write_fd, json.dumps(probe()).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as answer:
        data = answer.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_pin_a_fork_drops_mlflows_client_state(
    tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import fluent

    for name in JOB_ENV_DROP:
        monkeypatch.delenv(name, raising=False)
    parent = load_settings(new_job_workspace(tmp_path / "parent", mlflow_template))
    child_uri = f"sqlite:///{tmp_path / 'child.db'}"
    mlflow_adapter.configure(parent)
    mlflow.start_run()  # the parent's active run, over a pooled SQLite connection
    engines = list(SqlAlchemyStore._engine_map.values())

    def probe() -> dict:
        pools = [id(engine.pool) for engine in engines]
        os.environ["MLFLOW_TRACKING_URI"] = child_uri
        mlflow_adapter.reset_after_fork()
        return {
            "tracking_uri": mlflow.get_tracking_uri(),
            "active_run": mlflow.active_run() is not None,
            "last_active_run": fluent._last_active_run_id.get(),
            "experiment": fluent._active_experiment_id,
            "pools_kept": [id(e.pool) for e in engines if id(e.pool) in pools],
            "adapter_active": mlflow_adapter._active is not None,
        }

    try:
        child = in_a_fork(probe)
    finally:
        mlflow.end_run()
    assert engines and child == {"tracking_uri": child_uri, "active_run": False, "last_active_run": None,
                                 "experiment": None, "pools_kept": [], "adapter_active": False}  # fmt: skip


def test_outside_its_versions_a_fork_cannot_reset_so_jobs_start_cold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(warm.WARM_ENV, raising=False)
    assert warm.enabled()
    monkeypatch.setattr(compat_mlflow, "CLIENT_STATE", OUTSIDE)
    assert not warm.enabled()
    with pytest.raises(compat.CompatError, match="^a patch pinned elsewhere: mlflow 3"):
        mlflow_adapter.reset_after_fork()


# --------------------------------------------------------------------------------------------
# Entry points: a starter in place of `bash -c`
# --------------------------------------------------------------------------------------------


def test_pin_run_entry_point_is_the_code_the_starter_repeats() -> None:
    from mlflow.projects.backend import local

    source = inspect.getsource(local._run_entry_point)
    assert hashlib.sha256(source.encode()).hexdigest() == compat_mlflow.RUN_ENTRY_POINT_SHA256, (
        "MLflow changed mlflow.projects.backend.local._run_entry_point: port entry_points_started_by "
        "in miniautoml/compat/mlflow.py to it, then update RUN_ENTRY_POINT_SHA256 and PINNED."
    )


class Started:
    """A stand-in process, as a starter returns one."""

    pid = 0

    def wait(self) -> int:
        return 0


def test_a_claimed_entry_point_is_started_with_the_runs_environment(tmp_path: Path) -> None:
    from mlflow.projects.backend import local
    from mlflow.projects.submitted_run import LocalSubmittedRun

    original, started, process = local._run_entry_point, [], Started()
    starter = compat_mlflow.Starter(claims=lambda command: command.startswith("claimed"),
                                    start=lambda *call: started.append(call) or process)  # fmt: skip
    with compat_mlflow.entry_points_started_by(starter):
        claimed = local._run_entry_point("claimed --x", str(tmp_path), "7", RUN_ID)
        other = local._run_entry_point("exit 3", str(tmp_path), "7", RUN_ID)
    assert local._run_entry_point is original
    assert isinstance(claimed, LocalSubmittedRun) and claimed.command_proc is process and claimed.run_id == RUN_ID
    ((command, work_dir, env),) = started
    assert (command, work_dir) == ("claimed --x", str(tmp_path))
    assert (env["MLFLOW_RUN_ID"], env["MLFLOW_EXPERIMENT_ID"]) == (RUN_ID, "7")
    assert other.command_proc.args == ["bash", "-c", "exit 3"] and other.wait() is False


def test_outside_its_versions_every_entry_point_goes_to_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.projects.backend import local

    original = local._run_entry_point
    monkeypatch.setattr(compat_mlflow, "ENTRY_POINT", OUTSIDE)
    with compat_mlflow.entry_points_started_by(compat_mlflow.Starter(claims=lambda c: True, start=lambda *a: None)):
        assert local._run_entry_point is original


# --------------------------------------------------------------------------------------------
# CPython: a fork ends as the interpreter ends
# --------------------------------------------------------------------------------------------

FORK_THAT_FINALIZES = textwrap.dedent("""
    import atexit, os, sys, threading, time
    from miniautoml.compat import python as compat_python
    out = sys.argv[1]
    def note(text):
        with open(out, "a") as fh:
            fh.write(text + "\\n")
    pid = os.fork()
    if pid == 0:
        threading.Thread(target=lambda: (time.sleep(0.2), note("thread"))).start()
        atexit.register(note, "atexit")
        try:
            compat_python.finalize()
        finally:
            os._exit(3)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
""")


def test_pin_a_finalized_fork_joins_its_threads_then_runs_its_exit_handlers(tmp_path: Path) -> None:
    out = tmp_path / "notes"
    done = subprocess.run([sys.executable, "-c", FORK_THAT_FINALIZES, str(out)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "3", "")
    assert out.read_text() == "thread\natexit\n"


def test_outside_its_versions_a_fork_is_not_finalized_and_jobs_start_cold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(warm.WARM_ENV, raising=False)
    monkeypatch.setattr(compat_python, "FINALIZE", compat.guard("fork finalization", "python<3", unpatched="cold"))
    assert not warm.enabled()
    with pytest.raises(compat.CompatError, match="^fork finalization: python 3"):
        compat_python.finalize()
