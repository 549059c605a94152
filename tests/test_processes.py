"""The process module with tiny Python children: spawn, readiness, pid files, stopping a group."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import wait_until

from miniautoml import processes
from miniautoml.processes import Command, Process, ProcessError, ProcessRef

# A child that ignores SIGTERM and says so once it does (so the test never signals it too early).
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(300)"


def python(code: str, **env: str) -> Command:
    return Command([sys.executable, "-c", code], env=env)


def wait_for_line(path: Path, text: str, timeout: float = 30.0, count: int = 1) -> None:
    """Until `path` holds `text` `count` times. Counted in the text, not by lines: processes
    printing to one file may write a line and its newline apart ("readyready\n\n" was seen)."""
    def seen() -> bool:
        return (path.read_text() if path.exists() else "").count(text) >= count

    wait_until(seen, timeout, f"{count} x {text!r} in {path}", interval=0.02)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def cleanup():
    """Processes to SIGKILL at the end, whatever the test did."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_spawn_runs_the_command_in_a_group_of_its_own_with_its_env_and_log(tmp_path: Path):
    os.environ["MINIAUTOML_TEST_DROPPED"] = "x"
    try:
        command = Command(
            [sys.executable, "-c", "import os; print(os.getcwd(), os.getpgid(0) == os.getpid(), "
             "os.environ['GREETING'], 'MINIAUTOML_TEST_DROPPED' in os.environ)"],
            cwd=tmp_path, env={"GREETING": "hello"}, unset=("MINIAUTOML_TEST_DROPPED",),
        )  # fmt: skip
        proc = processes.spawn(command, log=tmp_path / "out.log")
    finally:
        del os.environ["MINIAUTOML_TEST_DROPPED"]
    assert proc.wait(10) is True
    assert proc.returncode == 0 and proc.get_status() == processes.FINISHED
    assert (tmp_path / "out.log").read_text().split() == [str(tmp_path), "True", "hello", "False"]
    assert proc.ref.start.isdigit()  # the start time, recorded at spawn


def test_stderr_goes_to_its_own_log_when_given(tmp_path: Path):
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    proc = processes.spawn(python(code), log=tmp_path / "out.log", err_log=tmp_path / "err.log")
    proc.wait(10)
    assert (tmp_path / "out.log").read_text() == "out\n" and (tmp_path / "err.log").read_text() == "err\n"


def test_statuses_of_failed_and_killed_children(tmp_path: Path):
    failed = processes.spawn(python("raise SystemExit(3)"))
    killed = processes.spawn(python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    assert failed.wait(10) and killed.wait(10)
    assert (failed.returncode, failed.get_status()) == (3, processes.FAILED)
    assert (killed.returncode, killed.get_status()) == (-signal.SIGKILL, processes.KILLED)
    assert processes.signal_name(killed.returncode) == "SIGKILL"


def test_wait_times_out_on_a_running_process(cleanup):
    proc = processes.spawn(python("import time; time.sleep(300)"))
    cleanup.append(proc.pid)
    assert proc.wait(0.1) is False and proc.get_status() == processes.RUNNING
    found = Process(proc.ref)  # the same process found again, e.g. through a job's tags
    assert found.running() and found.wait(0.1) is False and found.get_status() == processes.RUNNING
    assert found.cancel(grace=5) == "SIGTERM"
    assert proc.returncode == -signal.SIGTERM
    assert found.wait(1) is True and found.get_status() == processes.EXITED  # not our child: code unknown


def test_a_program_that_cannot_run_is_an_oserror(tmp_path: Path):
    with pytest.raises(OSError):
        processes.spawn(Command([str(tmp_path / "missing")]))


# --------------------------------------------------------------------------- readiness


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200 if self.path == "/ready" else 503)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_wait_ready_polls_until_the_url_answers_2xx(tmp_path: Path, cleanup):
    port = processes.free_port()
    # The child starts its server only after a while: wait_ready keeps asking until then.
    code = (
        "import http.server, time, sys\n"
        "time.sleep(0.5)\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self): self.send_response(200); self.end_headers()\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    proc = processes.spawn(python(code), log=tmp_path / "srv.log", ready_url=f"http://127.0.0.1:{port}/")
    cleanup.append(proc.pid)
    start = time.monotonic()
    processes.wait_ready([proc], timeout=20)
    assert time.monotonic() - start >= 0.4 and proc.running()
    assert processes.http_ok(f"http://127.0.0.1:{port}/")


def test_wait_ready_reports_a_process_that_exits_with_its_log(tmp_path: Path):
    code = "import sys; print('cannot bind', file=sys.stderr); sys.exit(4)"
    proc = processes.spawn(python(code), log=tmp_path / "svc.log", name="svc", ready_url="http://127.0.0.1:1/")
    with pytest.raises(ProcessError, match=r"^svc exited with code 4 before it was ready; log .*svc.log: cannot bind"):
        processes.wait_ready([proc], timeout=20)


def test_wait_ready_gives_up_after_the_timeout(tmp_path: Path, cleanup):
    port = processes.free_port()
    proc = processes.spawn(python("import time; time.sleep(300)"), log=tmp_path / "slow.log", name="slow",
                           ready_url=f"http://127.0.0.1:{port}/")
    cleanup.append(proc.pid)
    with pytest.raises(ProcessError, match=r"^not ready within 0.3s: slow \(http://127.0.0.1:\d+/\)"):
        processes.wait_ready([proc], timeout=0.3)


def test_http_ok_wants_2xx():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert processes.http_ok(base + "/ready") is True
        assert processes.http_ok(base + "/other") is False
    finally:
        server.shutdown()
        server.server_close()
    assert processes.http_ok(base + "/ready") is False  # nothing listens any more


def test_free_port_is_free():
    port = processes.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # would raise if taken


# --------------------------------------------------------------------------- pid files


def test_pid_file_round_trip_finds_the_same_process(tmp_path: Path, cleanup):
    proc = processes.spawn(python("import time; time.sleep(300)"), name="svc")
    cleanup.append(proc.pid)
    path = tmp_path / "svc.json"
    written = processes.write_pidfile(path, proc, name="svc", url="http://127.0.0.1:1")
    record = processes.read_pidfile(path)
    assert record == written
    assert record["pid"] == proc.pid and record["start"] == proc.ref.start and record["url"] == "http://127.0.0.1:1"
    assert abs(record["create_time"] - psutil.Process(proc.pid).create_time()) < 0.01
    assert record["cmdline"] == [sys.executable, "-c", "import time; time.sleep(300)"]
    found = Process.from_record(record)
    assert found is not None and found.pid == proc.pid and found.name == "svc" and found.running()

    proc.cancel(grace=5)
    assert Process.from_record(record) is None  # exited: nothing to signal


def test_a_pid_file_finds_a_script_run_through_its_shebang(tmp_path: Path, cleanup):
    # `.venv/bin/mlflow server` runs as `python3.11 .venv/bin/mlflow server`: still the same command.
    script = tmp_path / "svc"
    script.write_text(f"#!{sys.executable}\nimport time, sys\ntime.sleep(300)\n")
    script.chmod(0o755)
    proc = processes.spawn(Command([str(script), "--flag"]), name="svc")
    cleanup.append(proc.pid)
    record = processes.write_pidfile(tmp_path / "svc.json", proc)
    found = Process.from_record(record)
    assert found is not None and found.pid == proc.pid


def test_a_reused_pid_is_not_taken_for_the_recorded_process(tmp_path: Path, cleanup):
    bystander = processes.spawn(python("import time; time.sleep(300)"))
    cleanup.append(bystander.pid)
    record = processes.write_pidfile(tmp_path / "svc.json", bystander)
    # The same pid with another start time, as when the OS gave the pid to a new process.
    assert Process.from_record({**record, "start": str(int(record["start"]) + 100)}) is None
    # A pid file without the start in ticks: the start in seconds since the epoch decides.
    assert Process.from_record({**record, "start": "", "create_time": record["create_time"] - 3600}) is None
    assert Process.from_record({**record, "start": ""}) is not None
    assert Process.from_record({**record, "cmdline": ["something", "else"]}) is None
    assert ProcessRef(bystander.pid, start="1").alive() is False
    assert ProcessRef(bystander.pid, start="1").kill_group() is False  # not signalled
    assert bystander.running()


@pytest.mark.parametrize("text", ["", "{", "[]", '{"pid": "x"}', '{"name": "svc"}'])
def test_a_torn_or_foreign_pid_file_reads_as_none(tmp_path: Path, text: str):
    path = tmp_path / "svc.json"
    path.write_text(text)
    assert processes.read_pidfile(path) is None
    assert processes.read_pidfile(tmp_path / "missing.json") is None


def test_process_ref_encodes_and_decodes():
    ref = ProcessRef.of(os.getpid())
    assert ProcessRef.decode(ref.encode()) == ref and ref.alive() is True and ref.local
    assert ProcessRef.decode("") is None and ProcessRef.decode("x:1:h") is None
    assert ProcessRef(os.getpid(), ref.start, host="another-host").alive() is None  # unknowable here


# --------------------------------------------------------------------------- stopping


def test_cancel_ends_a_cooperative_process_with_sigterm():
    proc = processes.spawn(python("import time; time.sleep(300)"))
    assert proc.cancel(grace=5) == "SIGTERM"
    assert proc.returncode == -signal.SIGTERM and proc.get_status() == processes.KILLED
    assert proc.cancel(grace=5) == "already-exited"


def test_cancel_escalates_to_sigkill_after_the_grace_period(tmp_path: Path, cleanup):
    log = tmp_path / "stubborn.log"
    proc = processes.spawn(python(STUBBORN), log=log)
    cleanup.append(proc.pid)
    wait_for_line(log, "ready")
    start = time.monotonic()
    assert proc.cancel(grace=0.5) == "SIGKILL"
    assert time.monotonic() - start >= 0.5
    assert proc.returncode == -signal.SIGKILL


def test_cancel_reaches_grandchildren_in_the_group_and_in_sessions_of_their_own(tmp_path: Path, cleanup):
    log = tmp_path / "tree.log"
    code = (
        "import subprocess, sys, time\n"
        f"stubborn = {STUBBORN!r}\n"
        "same = subprocess.Popen([sys.executable, '-c', stubborn])\n"  # in the leader's group
        "own = subprocess.Popen([sys.executable, '-c', stubborn], start_new_session=True)\n"
        "print('children', same.pid, own.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    proc = processes.spawn(python(code), log=log)
    cleanup.append(proc.pid)
    wait_for_line(log, "ready", count=2)
    line = next(ln for ln in log.read_text().splitlines() if ln.startswith("children"))
    same, own = (int(pid) for pid in line.split()[1:])
    cleanup.extend([same, own])
    assert os.getpgid(same) == proc.pid != os.getpgid(own)

    assert proc.cancel(grace=0.5) == "SIGKILL"
    wait_until(lambda: gone(same) and gone(own), 5, "both children to be gone")


COOPERATIVE = "import time; print('ready', flush=True); time.sleep(300)"


@pytest.mark.parametrize("child, ended_by", [(COOPERATIVE, "SIGTERM"), (STUBBORN, "SIGKILL")])
def test_stop_tree_ends_a_tree_in_sessions_of_its_own(tmp_path: Path, cleanup, child: str, ended_by: str):
    """What `cluster down` and the tests' teardowns use: every process signalled, no group."""
    log = tmp_path / "tree.log"
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child!r}], start_new_session=True)\n"
        "time.sleep(300)\n"
    )
    proc = processes.spawn(python(code), log=log)
    cleanup.append(proc.pid)
    wait_for_line(log, "ready")  # the child runs (and ignores SIGTERM, if it does)
    procs = processes.process_tree(proc.pid)
    cleanup.extend(p.pid for p in procs)
    assert len(procs) == 2 and os.getsid(procs[1].pid) != os.getsid(proc.pid)
    assert processes.stop_tree(procs, grace=1) == ended_by
    assert all(gone(p.pid) for p in procs)


def test_kill_group_ends_what_outlived_the_leader(tmp_path: Path, cleanup):
    log = tmp_path / "orphan.log"
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; print(\"up\", flush=True); time.sleep(300)'])\n"
        "print('child', child.pid, flush=True)\n"
    )  # the leader exits at once; its child stays in the group
    proc = processes.spawn(python(code), log=log)
    cleanup.append(proc.pid)
    assert proc.wait(10)
    wait_for_line(log, "up")
    child = int(next(ln for ln in log.read_text().splitlines() if ln.startswith("child")).split()[1])
    cleanup.append(child)
    assert not gone(child)
    proc.kill_group(signal.SIGKILL)
    wait_until(lambda: gone(child), 5, "the leader's child to be gone")


def test_exec_command_replaces_the_process(tmp_path: Path):
    code = (
        "from miniautoml.processes import Command, exec_command\n"
        "import sys\n"
        "exec_command(Command([sys.executable, '-c', 'import os; print(os.getcwd(), os.environ[\"X\"])'],"
        f" cwd={str(tmp_path)!r}, env={{'X': 'y'}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(tmp_path), "y"]
