"""A local Ray head for the workspace: `miniautoml cluster up | status | down`.

`up` runs `ray start --head --block` as a process group of its own (processes.spawn), every port
picked free here and a temp dir of its own under /tmp (Ray's socket paths must stay short), so two
clusters on one machine never meet. Its record, `<ws>/.miniautoml/ray/cluster.json`, holds the
job `address` (the dashboard's HTTP address: the Ray Jobs API) that the `ray` jobs backend uses.
`down` stops exactly that process tree (never `ray stop`, which stops every Ray of the user).
Other machines join with Ray's own `ray start --address <gcs_address>` (docs/deploy/ray-cluster.md);
`status` lists the nodes the head knows, read from its state API (`/api/v0/nodes`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from miniautoml.config import Settings
from miniautoml.errors import UserInputError
from miniautoml.processes import (
    Command,
    Process,
    ProcessError,
    ProcessRef,
    free_port,
    http_ok,
    process_tree,
    read_pidfile,
    spawn,
    stop_tree,
    wait_ready,
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


def nodes(address: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The nodes the cluster at job `address` knows (dead ones included), from its state API:
    [{node_id, ip, head, alive, state, state_message, cpus}]. Raises OSError when it does not answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{address.rstrip('/')}/api/v0/nodes?limit=1000", timeout=timeout) as resp:
            body = json.load(resp)
    except (urllib.error.URLError, ValueError) as exc:
        raise OSError(f"the Ray state API at {address} did not answer: {exc}") from None
    rows = ((body.get("data") or {}).get("result") or {}).get("result") or []
    return [{
        "node_id": row.get("node_id"),
        "ip": row.get("node_ip"),
        "head": bool(row.get("is_head_node")),
        "alive": row.get("state") == "ALIVE",
        "state": row.get("state"),
        "state_message": row.get("state_message"),
        "cpus": (row.get("resources_total") or {}).get("CPU"),
    } for row in rows]


def local_ips() -> set[str]:
    """This machine's addresses (every interface, loopback included, and its hostname's)."""
    import psutil

    ips = {"localhost", "127.0.0.1", "::1", socket.gethostname()}
    for addrs in psutil.net_if_addrs().values():
        ips.update(a.address.split("%")[0] for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6))
    try:
        ips.update(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass
    return ips


def _describe(record: dict[str, Any] | None, state: str) -> dict[str, Any]:
    if not record:
        return {"state": state, "address": None, "nodes": [], "node_count": 0}
    healthy = _healthy(record.get("address"))
    try:
        known, problem = (nodes(record["address"]) if healthy else []), None
    except OSError as exc:
        known, problem = [], str(exc)
    gcs = record.get("gcs_address")
    return {
        "state": state,
        "address": record.get("address"),
        "gcs_address": gcs,
        "join": f"ray start --address {gcs}" if gcs else None,  # run on a worker machine (docs/deploy/ray-cluster.md)
        "num_cpus": record.get("num_cpus"),
        "pid": record.get("pid"),
        "alive": _alive(record),
        "healthy": healthy,
        "node_count": sum(1 for n in known if n["alive"]),  # alive nodes, the head included
        "nodes": known,
        **({"nodes_error": problem} if problem else {}),
        "temp_dir": record.get("temp_dir"),
        "log": record.get("log"),
    }


def status(settings: Settings) -> dict[str, Any]:
    record = read_pidfile(record_path(settings))
    return _describe(record, "running" if _alive(record) else "stopped")


def up(settings: Settings, num_cpus: int = 1, timeout: float = READY_TIMEOUT, host: str = HOST) -> dict[str, Any]:
    """Start the workspace's Ray head (a running one is reported, not restarted). `host`: the
    address it listens on and advertises; other machines can join only if it is not loopback."""
    record = read_pidfile(record_path(settings))
    if _alive(record):
        return _describe(record, "running")
    if record:  # a dead cluster's leftovers
        _stop_tree(record)
    ray = _ray_exe()
    ray_dir(settings).mkdir(parents=True, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix="mam-ray-")
    ports = {name: free_port(host) for name in (
        "port", "dashboard-port", "ray-client-server-port", "node-manager-port", "object-manager-port",
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port",
    )}
    argv = [ray, "start", "--head", "--block", "--node-ip-address", host, "--num-cpus", str(num_cpus),
            "--object-store-memory", str(OBJECT_STORE_BYTES), "--include-dashboard", "true",
            "--dashboard-host", host, "--temp-dir", temp_dir, "--disable-usage-stats"]
    for name, port in ports.items():
        argv += [f"--{name}", str(port)]
    env = {
        # jobs' entrypoints run `mlflow`/`python` of this environment
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    log = ray_dir(settings) / "ray-head.log"
    address = f"http://{host}:{ports['dashboard-port']}"
    # ready once the job API lists jobs (the dashboard alone answers earlier)
    proc = spawn(Command(argv, settings.workspace, env, unset=_FOREIGN_ENV), log=log, name="ray head",
                 ready_url=f"{address}/api/jobs/")
    record = write_pidfile(record_path(settings), proc, address=address, gcs_address=f"{host}:{ports['port']}",
                           num_cpus=num_cpus, temp_dir=temp_dir, log=str(log))
    deadline = time.monotonic() + timeout
    try:
        wait_ready([proc], timeout)
        _wait_head_listed(address, proc, deadline)
    except ProcessError:
        _stop_tree(record)
        record_path(settings).unlink(missing_ok=True)
        raise
    return _describe(record, "started")


def _wait_head_listed(address: str, proc: Process, deadline: float) -> None:
    """Wait until the state API lists the head: for ~15 s after the job API answers it lists no
    node, and `status` (node_count) must not report an empty cluster."""
    while True:
        try:
            if any(n["head"] and n["alive"] for n in nodes(address)):
                return
        except OSError:
            pass
        if not proc.running():
            raise ProcessError(f"ray head exited with code {proc.returncode}; log {proc.log}")
        if time.monotonic() >= deadline:
            raise ProcessError(f"ray head: its state API listed no node in time; log {proc.log}")
        time.sleep(0.25)


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

    procs = process_tree(int(record["pid"])) if _alive(record) else []
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
    if procs:
        stop_tree(procs, grace, name="ray head")
    if temp_dir and Path(temp_dir).name.startswith("mam-ray-"):
        shutil.rmtree(temp_dir, ignore_errors=True)
