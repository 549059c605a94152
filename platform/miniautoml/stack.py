"""The local stack of one workspace: MLflow tracking server + UI, the BentoML prediction service
and, on request, an S3-compatible server, run as background processes.

`up` starts what is not running yet and waits until each service answers its health endpoint;
`down` stops exactly what `up` started; `status` reports it. What runs is recorded in one JSON
"pid file" per service in `<workspace>/.miniautoml/stack/<name>.json`: the pid plus the process's
start time and command line, so a pid the OS has since reused for another process is never
signalled. Each service runs in its own session (process group); `down` sends SIGTERM to the group
and to every descendant, then SIGKILL to whatever is left after a grace period. Logs go to
`<workspace>/.miniautoml/stack/<name>.log`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miniautoml.config import CONFIG_FILE, PROJECT_ROOT, Settings, StorageSettings, load_settings
from miniautoml.errors import MiniAutoMLError, UserInputError
from miniautoml.locks import file_lock

ORDER = ("s3", "mlflow", "serve")  # start order; `down` stops in reverse
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORTS = {"mlflow": 5000, "serve": 3000, "s3": 9000}
HOST_ENV = "MINIAUTOML_HOST"
PORT_ENV = {"mlflow": "MINIAUTOML_MLFLOW_PORT", "serve": "MINIAUTOML_SERVE_PORT", "s3": "MINIAUTOML_S3_PORT"}
TIMEOUT_ENV = "MINIAUTOML_STACK_TIMEOUT"  # seconds a service may take to become ready
GRACE_ENV = "MINIAUTOML_STACK_GRACE"  # seconds between SIGTERM and SIGKILL on `down`
DEFAULT_TIMEOUT = 180.0
DEFAULT_GRACE = 10.0
# Keys for the local S3 server when none are in the environment. Local development only.
DEV_ACCESS_KEY = "minioadmin"
DEV_SECRET_KEY = "minioadmin"

BENTO_DIR = PROJECT_ROOT / "bentos"
BENTO_SERVICE = "service:PredictionService"
BIN = Path(sys.executable).parent  # the virtualenv's scripts: mlflow, bentoml, moto_server


class StackError(MiniAutoMLError):
    """A service of the local stack could not be started or stopped."""


@dataclass(frozen=True)
class StackOptions:
    host: str = DEFAULT_HOST
    mlflow_port: int = DEFAULT_PORTS["mlflow"]
    serve_port: int = DEFAULT_PORTS["serve"]
    s3_port: int = DEFAULT_PORTS["s3"]
    s3: bool = False
    serve: bool = True
    timeout: float = DEFAULT_TIMEOUT

    def port(self, name: str) -> int:
        return {"mlflow": self.mlflow_port, "serve": self.serve_port, "s3": self.s3_port}[name]

    def flag(self, name: str) -> str:
        return f"--{name}-port or {PORT_ENV[name]}"


@dataclass
class Launch:
    """How to start one service and how to tell that it is ready."""

    name: str
    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    host: str
    port: int
    health_path: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return http_url(self.host, self.port)

    @property
    def health_url(self) -> str:
        return self.url + self.health_path


# --------------------------------------------------------------------------- paths and records


def stack_dir(settings: Settings) -> Path:
    return settings.state_dir / "stack"


def record_path(settings: Settings, name: str) -> Path:
    return stack_dir(settings) / f"{name}.json"


def log_path(settings: Settings, name: str) -> Path:
    return stack_dir(settings) / f"{name}.log"


def http_url(host: str, port: int) -> str:
    """The URL clients use: a wildcard bind address is reached through the loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _write_record(settings: Settings, record: dict) -> None:
    path = record_path(settings, record["name"])
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _read_records(settings: Settings) -> dict[str, dict]:
    records: dict[str, dict] = {}
    directory = stack_dir(settings)
    if not directory.is_dir():
        return records
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # a torn or foreign file cannot describe a live service
            continue
        records[path.stem] = record
    return _ordered(records)


def _remove_record(settings: Settings, name: str) -> None:
    record_path(settings, name).unlink(missing_ok=True)


@contextlib.contextmanager
def _stack_lock(settings: Settings, timeout: float = 300.0) -> Iterator[None]:
    """One `up`/`down` at a time per workspace, so two `up`s never start a service twice."""
    busy = lambda: StackError(f"another `up` or `down` of {settings.workspace} is still running")  # noqa: E731
    with file_lock(stack_dir(settings) / "stack.lock", timeout, busy, poll=0.1):
        yield


# --------------------------------------------------------------------------- processes


def _process(record: dict):
    """The live process a record describes, or None (exited, zombie, or the pid was reused)."""
    import psutil

    try:
        proc = psutil.Process(int(record["pid"]))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if abs(proc.create_time() - float(record.get("create_time", 0))) > 0.5:
            return None  # same pid, different process
        if record.get("cmdline") and proc.cmdline() != record["cmdline"]:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, ValueError, KeyError):
        return None


def _gone(proc) -> bool:
    import psutil

    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.AccessDenied:
        return False


def _signal_tree(leader, procs: list, sig: int) -> None:
    """Signal the leader's process group (it leads its own session) and every known descendant."""
    import psutil

    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(leader.pid) == leader.pid:
            os.killpg(leader.pid, sig)
    for proc in procs:
        if not _gone(proc):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.send_signal(sig)


def _terminate(proc, grace: float) -> str:
    """SIGTERM the process and its descendants; SIGKILL what is left after `grace` seconds."""
    import psutil

    try:
        # BentoML's workers run in sessions of their own: collect them before the arbiter exits.
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return "already-exited"
    _signal_tree(proc, [proc], signal.SIGTERM)  # descendants get the leader's orderly shutdown first
    if _wait_gone(procs, grace):
        return "SIGTERM"
    _signal_tree(proc, procs, signal.SIGKILL)
    if not _wait_gone(procs, 10.0):
        alive = [p.pid for p in procs if not _gone(p)]
        raise StackError(f"processes {alive} survived SIGKILL")
    return "SIGKILL"


def _wait_gone(procs: list, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if all(_gone(p) for p in procs):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _stop_record(settings: Settings, record: dict, grace: float) -> dict:
    proc = _process(record)
    result = {"pid": record["pid"], "url": record.get("url")}
    if proc is None:
        result["state"] = "not-running"  # exited on its own (or pid reused): nothing to signal
    else:
        result["signal"] = _terminate(proc, grace)
        result["state"] = "stopped"
    _remove_record(settings, record["name"])
    return result


def _port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a socket in TIME_WAIT from a service we just stopped is no obstacle.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
                raise UserInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
            raise
    return False


def _port_owner(port: int) -> str:
    """Best effort: `pid 123 (nginx)` of the process listening on `port`, else ""."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.pid:
                return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except Exception:  # noqa: BLE001 - only decorates an error message
        pass
    return ""


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when `url` answers 2xx. Proxies are bypassed: these services are local."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _spawn(settings: Settings, launch: Launch) -> tuple[subprocess.Popen, dict]:
    import psutil

    log = log_path(settings, launch.name)
    with open(log, "ab") as out:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        out.write(f"\n=== {stamp} miniautoml up: {' '.join(launch.cmd)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                launch.cmd,
                cwd=launch.cwd,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: `down` signals the whole group
            )
        except OSError as exc:
            raise StackError(f"{launch.name}: cannot run {launch.cmd[0]}: {exc.strerror}") from None
    # Popen returns after exec, so pid, start time and command line are the service's own.
    try:
        info = psutil.Process(proc.pid)
        create_time, cmdline = info.create_time(), info.cmdline()
    except psutil.Error:  # exited at once: _wait_ready reports it with the log
        create_time, cmdline = 0.0, list(launch.cmd)
    record = {
        "name": launch.name,
        "pid": proc.pid,
        "create_time": create_time,
        "cmdline": cmdline,
        "host": launch.host,
        "port": launch.port,
        "url": launch.url,
        "health_url": launch.health_url,
        "log": str(log),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **launch.extra,
    }
    _write_record(settings, record)  # before waiting: a killed `up` still leaves `down` a record
    return proc, record


def _wait_ready(started: list[tuple[Launch, subprocess.Popen, dict]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(started)
    while pending:
        for item in list(pending):
            launch, proc, record = item
            code = proc.poll()
            if code is not None:
                tail = _tail(Path(record["log"]))
                raise StackError(
                    f"{launch.name} exited with code {code} before it was ready; log {record['log']}"
                    + (f": {tail}" if tail else "")
                )
            if _http_ok(launch.health_url):
                pending.remove(item)
        if pending and time.monotonic() >= deadline:
            names = ", ".join(f"{lch.name} ({lch.health_url})" for lch, _, _ in pending)
            raise StackError(f"not ready within {timeout:g}s: {names}; logs in {pending[0][2]['log']}")
        if pending:
            time.sleep(0.1)


# --------------------------------------------------------------------------- service definitions


def _base_env(settings: Settings, keys: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings.tool_env())
    env.update(keys)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # local services: no usage reports
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return env


def _s3_keys(settings: Settings) -> tuple[dict[str, str], bool]:
    """Keys for the S3 server and its clients: the environment's, else the dev-only defaults."""
    storage = settings.storage
    if storage.access_key and storage.secret_key:
        return {"AWS_ACCESS_KEY_ID": storage.access_key, "AWS_SECRET_ACCESS_KEY": storage.secret_key}, False
    return {"AWS_ACCESS_KEY_ID": DEV_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": DEV_SECRET_KEY}, True


def _s3_launch(settings: Settings, opts: StackOptions, keys: dict[str, str]) -> Launch:
    env = _base_env(settings, keys)
    minio = shutil.which("minio")
    if minio:
        data = stack_dir(settings) / "minio-data"
        data.mkdir(parents=True, exist_ok=True)
        env["MINIO_ROOT_USER"] = keys["AWS_ACCESS_KEY_ID"]
        env["MINIO_ROOT_PASSWORD"] = keys["AWS_SECRET_ACCESS_KEY"]
        cmd = [minio, "server", str(data), "--address", f"{opts.host}:{opts.s3_port}", "--quiet"]
        return Launch("s3", cmd, settings.state_dir, env, opts.host, opts.s3_port, "/minio/health/ready",
                      {"kind": "minio", "data": str(data), "bucket": settings.storage.bucket})
    moto = BIN / "moto_server"
    if not moto.exists():
        raise StackError("no S3 server: put `minio` on PATH or install moto[server] in the virtualenv")
    cmd = [str(moto), "-H", opts.host, "-p", str(opts.s3_port)]
    return Launch("s3", cmd, settings.state_dir, env, opts.host, opts.s3_port, "/",
                  {"kind": "moto", "data": "in memory (lost on down)", "bucket": settings.storage.bucket})


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):].split("?")[0])
    return None


def _mlflow_launch(settings: Settings, opts: StackOptions, keys: dict[str, str]) -> Launch | None:
    backend = settings.tracking_uri
    if backend.startswith(("http://", "https://", "databricks")):
        return None  # tracking already lives on a server: nothing to start
    db = _sqlite_path(backend)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    if settings.artifact_root.startswith("file:"):
        Path(urllib.request.url2pathname(settings.artifact_root[len("file://"):])).mkdir(parents=True, exist_ok=True)
    cmd = [
        str(BIN / "mlflow"), "server",
        "--workers", "1",
        "--host", opts.host,
        "--port", str(opts.mlflow_port),
        "--backend-store-uri", backend,
        "--default-artifact-root", settings.artifact_root,
        "--artifacts-destination", settings.artifact_root,
    ]  # fmt: skip
    env = _base_env(settings, keys)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job-runner processes on 2 cores
    return Launch("mlflow", cmd, settings.state_dir, env, opts.host, opts.mlflow_port, "/health",
                  {"backend_store_uri": backend, "artifact_root": settings.artifact_root})


def _serve_launch(settings: Settings, opts: StackOptions, keys: dict[str, str]) -> Launch:
    cmd = [str(BIN / "bentoml"), "serve", BENTO_SERVICE, "--host", opts.host, "--port", str(opts.serve_port)]
    env = _base_env(settings, keys)
    return Launch("serve", cmd, BENTO_DIR, env, opts.host, opts.serve_port, "/readyz",
                  {"service": BENTO_SERVICE, "tracking_uri": settings.tracking_uri})


# --------------------------------------------------------------------------- workspace config


def _set_storage_endpoint(settings: Settings, endpoint: str) -> tuple[str | None, bool]:
    """Write `[storage] endpoint` into the workspace's miniautoml.toml: (old text, changed?)."""
    import tomlkit

    path = settings.workspace / CONFIG_FILE
    old = path.read_text(encoding="utf-8") if path.exists() else None
    doc = tomlkit.parse(old) if old else tomlkit.document()
    storage = doc.get("storage")
    if storage is None:
        storage = tomlkit.table()
        doc["storage"] = storage
    if storage.get("endpoint") == endpoint:
        return old, False
    storage["endpoint"] = endpoint  # the endpoint only: keys stay in the environment
    settings.workspace.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
    return old, True


def _restore_config(settings: Settings, old: str | None) -> None:
    path = settings.workspace / CONFIG_FILE
    if old is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(old, encoding="utf-8")


def storage_before_path(settings: Settings) -> Path:
    """What `[storage] endpoint` was before `up --s3` changed it; `down` puts it back.
    (Not in stack_dir: every `*.json` there is a service's pid file.)"""
    return settings.state_dir / "storage-before-s3.json"


def _toml_endpoint(text: str | None) -> str | None:
    import tomllib

    try:
        endpoint = tomllib.loads(text or "").get("storage", {}).get("endpoint")
    except (tomllib.TOMLDecodeError, AttributeError):
        return None
    return endpoint if isinstance(endpoint, str) and endpoint else None


def _save_storage_before(settings: Settings, old: str | None, endpoint: str) -> bool:
    """Remember the storage endpoint `up --s3` replaced (once: a second `up --s3` before `down`
    keeps the first record, the state before the stack). Returns whether it wrote the record."""
    path = storage_before_path(settings)
    if path.exists():
        return False
    record = {"endpoint": _toml_endpoint(old), "config_existed": old is not None, "set_endpoint": endpoint}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return True


def _restore_storage(settings: Settings, s3_url: str | None) -> dict:
    """Put back `[storage] endpoint` as it was before `up --s3`, if it still names the stopped
    server. Only that key changes: other edits to miniautoml.toml since `up` stay."""
    import tomlkit

    path = settings.workspace / CONFIG_FILE
    backup_path = storage_before_path(settings)
    try:
        before = json.loads(backup_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}  # no record (an older `up`): the endpoint was the embedded default's, none
    stopped = s3_url or before.get("set_endpoint")
    text = path.read_text(encoding="utf-8") if path.exists() else None
    out: dict[str, Any] = {"stopped_endpoint": stopped, "config": str(path)}
    current = _toml_endpoint(text)
    if text is None or current is None or current != stopped:
        out["restored"] = False  # the workspace no longer names the stopped server: left as is
    else:
        doc = tomlkit.parse(text)
        previous = before.get("endpoint")
        if previous:
            doc["storage"]["endpoint"] = previous
        else:
            del doc["storage"]["endpoint"]
            if not doc["storage"]:
                del doc["storage"]
        new_text = tomlkit.dumps(doc)
        if not new_text.strip() and not before.get("config_existed", False):
            path.unlink()
        else:
            tmp = path.with_suffix(".toml.tmp")
            tmp.write_text(new_text, encoding="utf-8")
            os.replace(tmp, path)
        out["restored"] = True
    backup_path.unlink(missing_ok=True)
    return out


def _repush(settings: Settings) -> int:
    """Upload everything the workspace tracks from the local DVC cache to its (restored) remote.

    Dataset commits and snapshots made while the stack's S3 server was the remote were pushed
    only there; their bytes are still in the local DVC cache (`.dvc/cache`), so the remote the
    workspace is back on gets them now and stays complete. Returns the number of files uploaded.
    """
    if not (settings.workspace / ".dvc").is_dir():
        return 0  # no DVC repository: no dataset was ever committed here
    from miniautoml.adapters import dvc
    from miniautoml.adapters import s3 as s3_adapter
    from miniautoml.errors import StorageError
    from miniautoml.workspace import locked

    with locked(settings, timeout=60.0):  # not while a dataset mutation runs (they are short)
        dvc.configure_remote(settings)
        if settings.storage.is_s3:
            s3_adapter.ensure_bucket(settings.storage)
        with dvc.open_repo(settings) as repo:
            try:
                return int(repo.push(remote=dvc.REMOTE) or 0)
            except Exception as exc:  # noqa: BLE001 - DVC wraps transport errors in many types
                raise StorageError(f"could not upload to the DVC remote: {dvc._reason(exc)}") from None


def _after_s3(settings: Settings, record: dict | None) -> tuple[dict, list[str]]:
    """After `down` stopped the S3 server: restore the storage settings, re-home the data, warn."""
    warnings: list[str] = []
    kind = (record or {}).get("kind")
    bucket = (record or {}).get("bucket") or settings.storage.bucket
    if kind == "moto":
        warnings.append(
            f"the local S3 server was moto, which keeps its data in memory: what was pushed to it is lost "
            f"(MLflow artifacts under s3://{bucket}/mlflow: models of runs trained while it ran cannot be "
            f"loaded; DVC data under s3://{bucket}/dvc: the local DVC cache still has it)"
        )
    elif kind == "minio":
        warnings.append(f"the local S3 server's data stays in {record.get('data')}; `miniautoml up --s3` serves it again")
    storage = _restore_storage(settings, (record or {}).get("url"))
    settings = load_settings(settings.workspace)
    storage["endpoint"] = settings.storage.endpoint  # None: the embedded local remote
    storage["remote"] = (
        f"s3://{settings.storage.bucket}/dvc" if settings.storage.is_s3 else str(settings.local_remote)
    )
    if not storage["restored"]:
        return storage, warnings  # the workspace names other storage: nothing to re-home
    try:
        storage["repushed"] = _repush(settings)
    except MiniAutoMLError as exc:
        storage["repushed"] = None
        storage["repush_error"] = str(exc)
        warnings.append(
            f"dataset data made while the local S3 server ran is only in the local DVC cache: {exc}; "
            f"`dvc push` in {settings.workspace} uploads it to {storage['remote']} once that works"
        )
    return storage, warnings


# --------------------------------------------------------------------------- public API


def _describe(record: dict, state: str, alive: bool | None = None) -> dict:
    out = {
        "state": state,
        "pid": record.get("pid"),
        "url": record.get("url"),
        "host": record.get("host"),
        "port": record.get("port"),
        "log": record.get("log"),
        "started_at": record.get("started_at"),
    }
    if alive is not None:
        out["alive"] = alive
    for key in ("kind", "bucket", "data", "backend_store_uri", "artifact_root", "service", "tracking_uri"):
        if key in record:
            out[key] = record[key]
    return out


def _urls(services: dict[str, dict], settings: Settings) -> dict[str, str]:
    urls: dict[str, str] = {}
    mlflow = services.get("mlflow")
    if mlflow and mlflow.get("url"):
        urls["mlflow_ui"] = mlflow["url"]
        urls["tracking_server"] = mlflow["url"]
    if services.get("serve", {}).get("url"):
        urls["prediction"] = services["serve"]["url"]
        urls["prediction_docs"] = services["serve"]["url"] + "/docs"
    if services.get("s3", {}).get("url"):
        urls["s3"] = services["s3"]["url"]
    urls["tracking_uri"] = settings.tracking_uri
    return urls


def up(settings: Settings, opts: StackOptions, progress: Callable[[str], None] | None = None) -> dict:
    """Start the requested services that are not running yet; report all that run.

    `progress` gets a line per service as it starts (after every check has passed).
    """
    say = progress or (lambda _line: None)
    wanted = [name for name in ORDER if (name != "s3" or opts.s3) and (name != "serve" or opts.serve)]
    if opts.s3 and os.environ.get("MINIAUTOML_S3_ENDPOINT"):
        raise UserInputError(
            f"MINIAUTOML_S3_ENDPOINT={os.environ['MINIAUTOML_S3_ENDPOINT']} already names the storage; "
            "unset it to run the local S3 server with --s3"
        )
    for name in wanted:
        if not 0 < opts.port(name) < 65536:
            raise UserInputError(f"{name} port {opts.port(name)}: not a TCP port ({opts.flag(name)})")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with _stack_lock(settings):
        running: dict[str, dict] = {}
        for name, record in _read_records(settings).items():
            if _process(record) is not None:
                running[name] = record
            else:
                _remove_record(settings, name)  # stale: the process is gone
        to_start = [name for name in wanted if name not in running]
        _check_startable(settings, opts, to_start)

        services: dict[str, dict] = {}
        for name, record in running.items():  # reported, never restarted
            services[name] = _describe(record, "running")
            if name in wanted and record.get("port") != opts.port(name):
                services[name]["note"] = (
                    f"already running on port {record.get('port')}; `miniautoml down` first to change ports"
                )
        if "s3" in to_start and "mlflow" in running:
            services["mlflow"]["note"] = (
                "started without S3: its default artifact root stays local until `miniautoml down` + `up --s3`"
            )
        started: list[tuple[Launch, subprocess.Popen, dict]] = []
        config_backup: tuple[str | None, bool] | None = None  # (old text, backup written?) once changed
        keys, dev_keys = _s3_keys(settings) if (opts.s3 or "s3" in running) else ({}, False)
        try:
            if "s3" in to_start:
                launch = _s3_launch(settings, opts, keys)
                say(f"starting s3 ({launch.extra['kind']}) on {launch.url} ...")
                started.append((launch, *_spawn(settings, launch)))
                _wait_ready(started[-1:], opts.timeout)
            if opts.s3:
                endpoint = running["s3"]["url"] if "s3" in running else started[-1][0].url
                old, changed = _set_storage_endpoint(settings, endpoint)
                if changed:
                    config_backup = (old, _save_storage_before(settings, old, endpoint))
                settings = load_settings(settings.workspace)
                _ensure_bucket(settings, endpoint, keys)
            batch = []
            for name in ("mlflow", "serve"):
                if name not in to_start:
                    continue
                launch = (_mlflow_launch if name == "mlflow" else _serve_launch)(settings, opts, keys)
                if launch is None:
                    services[name] = {"state": "external", "url": settings.tracking_uri}
                    continue
                say(f"starting {name} on {launch.url} ...")
                started.append((launch, *_spawn(settings, launch)))
                batch.append(started[-1])
            _wait_ready(batch, opts.timeout)  # MLflow and BentoML start side by side
        except BaseException:
            _rollback(settings, started)
            if config_backup is not None:
                _restore_config(settings, config_backup[0])
                if config_backup[1]:
                    storage_before_path(settings).unlink(missing_ok=True)
            raise
        for launch, _proc, record in started:
            services[launch.name] = _describe(record, "started")
        services = _ordered(services)
        result: dict[str, Any] = {
            "workspace": str(settings.workspace),
            "services": services,
            "urls": _urls(services, settings),
        }
        if "s3" in services:
            result["storage"] = {
                "endpoint": services["s3"]["url"],
                "bucket": settings.storage.bucket,
                "config": str(settings.workspace / CONFIG_FILE),
            }
        if dev_keys:
            result["env"] = keys  # the dev-only default keys: export them for dataset commands
        return result


def _check_startable(settings: Settings, opts: StackOptions, to_start: list[str]) -> None:
    """Every obstacle found before anything starts, so a failure leaves nothing half-started."""
    ports: dict[int, str] = {}
    for name in to_start:
        port = opts.port(name)
        if port in ports:
            raise UserInputError(f"{ports[port]} and {name} cannot both use port {port}")
        ports[port] = name
        if _port_in_use(opts.host, port):
            raise UserInputError(
                f"port {port} on {opts.host} (for {name}) is already in use{_port_owner(port)}; "
                f"choose another with {opts.flag(name)}"
            )
    if "serve" in to_start and not (BENTO_DIR / "service.py").is_file():
        raise UserInputError(
            f"the prediction service {BENTO_DIR / 'service.py'} is missing; start the rest with --no-serve"
        )


def _ensure_bucket(settings: Settings, endpoint: str, keys: dict[str, str]) -> None:
    from miniautoml.adapters import s3 as s3_adapter

    s3_adapter.ensure_bucket(
        StorageSettings(
            endpoint=endpoint,
            bucket=settings.storage.bucket,
            access_key=keys["AWS_ACCESS_KEY_ID"],
            secret_key=keys["AWS_SECRET_ACCESS_KEY"],
            region=settings.storage.region,
        )
    )


def _rollback(settings: Settings, started: list[tuple[Launch, subprocess.Popen, dict]]) -> None:
    for _launch, proc, record in reversed(started):
        with contextlib.suppress(Exception):
            _stop_record(settings, record, grace=5.0)
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)  # our own child: reap it


def _ordered(services: dict[str, dict]) -> dict[str, dict]:
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(services.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def down(settings: Settings, grace: float = DEFAULT_GRACE) -> dict:
    """Stop every service `up` started in this workspace (last started first).

    With the local S3 server among them, the workspace goes back to the storage it used before
    `up --s3` (`[storage] endpoint` of miniautoml.toml as it was), and the dataset data made
    meanwhile is uploaded there from the local DVC cache: `storage` in the result says what was
    restored and uploaded, `warnings` what was lost (moto keeps its data in memory only).
    """
    stopped: dict[str, dict] = {}
    if not stack_dir(settings).is_dir():
        return {"workspace": str(settings.workspace), "services": stopped}
    with _stack_lock(settings):
        records = _read_records(settings)
        for name in reversed(list(records)):
            stopped[name] = _stop_record(settings, records[name], grace)
        result: dict[str, Any] = {"workspace": str(settings.workspace), "services": _ordered(stopped)}
        if "s3" in records or storage_before_path(settings).exists():
            # The workspace named the server just stopped: back to the storage of before `up --s3`.
            result["storage"], result["warnings"] = _after_s3(settings, records.get("s3"))
    return result


def status(settings: Settings) -> dict:
    """What runs: one entry per recorded service with pid, URL, liveness and health."""
    services: dict[str, dict] = {}
    for name, record in _read_records(settings).items():
        alive = _process(record) is not None
        entry = _describe(record, "running" if alive else "dead", alive=alive)
        entry["healthy"] = alive and _http_ok(record.get("health_url", ""))
        services[name] = entry
    live = {name: s for name, s in services.items() if s["alive"]}
    return {
        "workspace": str(settings.workspace),
        "running": bool(live),
        "services": services,
        "urls": _urls(live, settings),
    }
