"""A local Ray head for the workspace: `miniautoml cluster up | status | down`.

`up` runs `ray start --head --block` as a process group of its own (processes.spawn), every port
picked free here and a temp dir of its own under /tmp (Ray's socket paths must stay short), so two
clusters on one machine never meet. Its record, `<ws>/.miniautoml/ray/cluster.json`, holds the
job `address` (the dashboard's HTTP address: the Ray Jobs API) that the `ray` jobs backend uses.
`down` stops exactly that process tree (never `ray stop`, which stops every Ray of the user).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from miniautoml.config import Settings
from miniautoml.errors import UserInputError
from miniautoml.processes import (
    Command,
    ProcessError,
    ProcessRef,
    free_port,
    http_ok,
    read_pidfile,
    spawn,
    write_pidfile,
)

HOST = "127.0.0.1"
READY_TIMEOUT = 90.0
STOP_GRACE = 10.0
OBJECT_STORE_BYTES = 100_000_000  # Ray's minimum is ~75 MB; jobs here pass no large objects
_FOREIGN_ENV = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "RAY_ADDRESS")


def ray_dir(settings: Settings) -> Path:
    return settings.state_dir / "ray"


def record_path(settings: Settings) -> Path:
    return ray_dir(settings) / "cluster.json"


def _ray_exe() -> str:
    exe = Path(sys.executable).with_name("ray")
    if not exe.exists():
        raise UserInputError("Ray is not installed: pip install -e '.[ray]'")
    return str(exe)


def _alive(record: dict[str, Any] | None) -> bool:
    if not record:
        return False
    return ProcessRef(pid=int(record["pid"]), start=str(record.get("start") or "")).alive() is True


def _healthy(address: str | None) -> bool:
    return bool(address) and http_ok(f"{address}/api/version")


def recorded_address(settings: Settings) -> str | None:
    """The job address of the cluster `up` started here, if it still runs; else None."""
    record = read_pidfile(record_path(settings))
    return record.get("address") if _alive(record) else None


def _describe(record: dict[str, Any] | None, state: str) -> dict[str, Any]:
    if not record:
        return {"state": state, "address": None}
    return {
        "state": state,
        "address": record.get("address"),
        "gcs_address": record.get("gcs_address"),
        "num_cpus": record.get("num_cpus"),
        "pid": record.get("pid"),
        "alive": _alive(record),
        "healthy": _healthy(record.get("address")),
        "temp_dir": record.get("temp_dir"),
        "log": record.get("log"),
    }


def status(settings: Settings) -> dict[str, Any]:
    record = read_pidfile(record_path(settings))
    return _describe(record, "running" if _alive(record) else "stopped")


def up(settings: Settings, num_cpus: int = 1, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    """Start the workspace's Ray head (a running one is reported, not restarted)."""
    record = read_pidfile(record_path(settings))
    if _alive(record):
        return _describe(record, "running")
    if record:  # a dead cluster's leftovers
        _stop_tree(record)
    ray = _ray_exe()
    ray_dir(settings).mkdir(parents=True, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix="mam-ray-")
    ports = {name: free_port(HOST) for name in (
        "port", "dashboard-port", "ray-client-server-port", "node-manager-port", "object-manager-port",
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port",
    )}
    argv = [ray, "start", "--head", "--block", "--node-ip-address", HOST, "--num-cpus", str(num_cpus),
            "--object-store-memory", str(OBJECT_STORE_BYTES), "--include-dashboard", "true",
            "--dashboard-host", HOST, "--temp-dir", temp_dir, "--disable-usage-stats"]
    for name, port in ports.items():
        argv += [f"--{name}", str(port)]
    env = {
        # jobs' entrypoints run `mlflow`/`python` of this environment
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    log = ray_dir(settings) / "ray-head.log"
    proc = spawn(Command(argv, settings.workspace, env, unset=_FOREIGN_ENV), log=log, name="ray head")
    address = f"http://{HOST}:{ports['dashboard-port']}"
    record = write_pidfile(record_path(settings), proc, address=address, gcs_address=f"{HOST}:{ports['port']}",
                           num_cpus=num_cpus, temp_dir=temp_dir, log=str(log))
    deadline = time.monotonic() + timeout
    while not _jobs_api_ready(address):
        if not proc.running() or time.monotonic() >= deadline:
            why = f"exited with code {proc.returncode}" if not proc.running() else f"not ready within {timeout:g}s"
            _stop_tree(record)
            record_path(settings).unlink(missing_ok=True)
            raise ProcessError(f"ray head {why}; log {log}")
        time.sleep(0.25)
    return _describe(record, "started")


def _jobs_api_ready(address: str) -> bool:
    """The dashboard answers and its job API lists jobs (the job head is up)."""
    return _healthy(address) and http_ok(f"{address}/api/jobs/")


def down(settings: Settings, grace: float = STOP_GRACE) -> dict[str, Any]:
    """Stop exactly the Ray head `up` started here (its whole process tree, jobs included)."""
    record = read_pidfile(record_path(settings))
    if not record:
        return {"state": "stopped", "stopped": False}
    was_alive = _alive(record)
    _stop_tree(record, grace)
    record_path(settings).unlink(missing_ok=True)
    return {"state": "stopped", "stopped": was_alive, "address": record.get("address")}


def _stop_tree(record: dict[str, Any], grace: float = STOP_GRACE) -> None:
    """SIGTERM the head and every descendant (raylet, workers, job drivers in sessions of their
    own), SIGKILL what is left after `grace`; then remove the cluster's temp dir."""
    import psutil

    procs: list[psutil.Process] = []
    if _alive(record):
        try:
            head = psutil.Process(int(record["pid"]))
            procs = [head, *head.children(recursive=True)]
        except psutil.Error:
            procs = []
    temp_dir = str(record.get("temp_dir") or "")
    if temp_dir:  # anything of this cluster's that got re-parented (names its temp/session dir)
        mine = {p.pid for p in procs}
        for proc in psutil.process_iter(["cmdline", "uids"]):
            try:
                if proc.pid not in mine and proc.info["uids"] and proc.info["uids"].real == os.getuid() \
                        and any(temp_dir in arg for arg in proc.info["cmdline"] or ()):
                    procs.append(proc)
            except psutil.Error:
                continue
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(procs, timeout=grace)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)
    if temp_dir and Path(temp_dir).name.startswith("mam-ray-"):
        shutil.rmtree(temp_dir, ignore_errors=True)
