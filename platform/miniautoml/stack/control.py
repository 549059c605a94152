"""Starting, stopping and reporting the stack's services, each recorded in a pid file of its own."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from miniautoml import processes
from miniautoml.adapters import mlflow as mlflow_adapter
from miniautoml.config import CONFIG_FILE, Settings, load_settings
from miniautoml.locks import file_lock
from miniautoml.processes import DEFAULT_GRACE, Process
from miniautoml.redact import redact_uri
from miniautoml.stack import checks, storage
from miniautoml.stack.services import (
    DEFAULT_HOST,
    DEFAULT_TIMEOUT,
    ORDER,
    Launch,
    StackError,
    StackOptions,
    mlflow_launch,
    s3_keys,
    s3_launch,
    serve_launch,
    stack_dir,
)

Started = tuple[Launch, Process, dict]  # a service `up` started: how, its handle, its pid file record


# --------------------------------------------------------------------------- pid files


def record_path(settings: Settings, name: str) -> Path:
    return stack_dir(settings) / f"{name}.json"


def log_path(settings: Settings, name: str) -> Path:
    return stack_dir(settings) / f"{name}.log"


def _read_records(settings: Settings) -> dict[str, dict]:
    records: dict[str, dict] = {}
    directory = stack_dir(settings)
    if not directory.is_dir():
        return records
    for path in sorted(directory.glob("*.json")):
        record = processes.read_pidfile(path)
        if record is None:
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


# --------------------------------------------------------------------------- starting and stopping


def _start(launch: Launch, log: Path) -> Process:
    """Start a service in a process group of its own, its output appended to `log`."""
    with open(log, "ab") as out:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        out.write(f"\n=== {stamp} miniautoml up: {' '.join(launch.command.argv)}\n".encode())
    try:
        return processes.spawn(launch.command, log=log, name=launch.name, ready_url=launch.health_url)
    except OSError as exc:
        raise StackError(f"{launch.name}: cannot run {launch.command.argv[0]}: {exc.strerror}") from None


def _spawn(settings: Settings, launch: Launch) -> Started:
    process = _start(launch, log_path(settings, launch.name))
    record = processes.write_pidfile(  # before waiting: a killed `up` still leaves `down` a record
        record_path(settings, launch.name), process,
        name=launch.name, host=launch.host, port=launch.port, url=launch.url, health_url=launch.health_url,
        log=str(process.log), started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **launch.extra,
    )  # fmt: skip
    return launch, process, record


def start_prediction_service(
    settings: Settings,
    port: int,
    *,
    host: str = DEFAULT_HOST,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Process:
    """Start the prediction service as `up` does, `env` added to its environment, and wait until it
    is ready. Not recorded as the stack's: the caller stops it (`Process.cancel`)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    process = _start(serve_launch(settings, host, port, {}, env), log or settings.state_dir / "serve.log")
    try:
        processes.wait_ready([process], timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            process.cancel(5.0)
        raise
    return process


def _stop_record(settings: Settings, record: dict, grace: float) -> dict:
    process = Process.from_record(record)
    result = {"pid": record["pid"], "url": record.get("url")}
    if process is None:
        result["state"] = "not-running"  # exited on its own (or pid reused): nothing to signal
    else:
        result["signal"] = process.cancel(grace)
        result["state"] = "stopped"
    _remove_record(settings, record["name"])
    return result


def _rollback(settings: Settings, started: list[Started]) -> None:
    for launch, process, _record in reversed(started):
        with contextlib.suppress(Exception):
            process.cancel(5.0)
        _remove_record(settings, launch.name)


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
    if record.get("name") == "mlflow":
        out["auth"] = bool(record.get("auth"))  # basic-auth app: REST and UI need a login
    for key in ("admin", "kind", "bucket", "data", "backend_store_uri", "artifact_root", "service", "tracking_uri"):
        if key in record:
            out[key] = redact_uri(record[key]) if key.endswith("uri") else record[key]
    return out


def _urls(services: dict[str, dict], settings: Settings) -> dict[str, str]:
    urls: dict[str, str] = {}
    mlflow = services.get("mlflow")
    if mlflow and mlflow.get("url"):
        urls["mlflow_ui"] = mlflow["url"]
        urls["tracking_server"] = mlflow["url"]
        # The runs table of the workspace's experiment (made now if need be: every job uses it);
        # no link when the store cannot be reached from here (a server behind a login).
        with contextlib.suppress(Exception):
            experiment_id = mlflow_adapter.ensure_experiment(settings)
            urls["mlflow_experiment"] = mlflow_adapter.runs_page(mlflow["url"], experiment_id)
    if services.get("serve", {}).get("url"):
        urls["prediction"] = services["serve"]["url"]
        urls["prediction_docs"] = services["serve"]["url"] + "/docs"
    if services.get("s3", {}).get("url"):
        urls["s3"] = services["s3"]["url"]
    urls["tracking_uri"] = redact_uri(settings.tracking_uri)
    return urls


def _ordered(services: dict[str, dict]) -> dict[str, dict]:
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(services.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def exposure_warnings(opts: StackOptions, services: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """What binding a non-loopback host would leave open to anyone who can reach it, naming the
    flag or variable that closes it (loopback, the default, needs no warning)."""
    from miniautoml.serving.auth import is_loopback

    if is_loopback(opts.host):
        return []
    env = os.environ if environ is None else environ
    warnings = []
    if "mlflow" in services and opts.auth is None:
        warnings.append(f"MLflow on {opts.host} has no login: anyone who can reach it reads and changes runs and "
                        "models; pass --auth")
    if "serve" in services and not env.get("MINIAUTOML_API_KEYS_FILE", "").strip():
        warnings.append(f"the prediction service on {opts.host} has no API keys: anyone who can reach it can "
                        "predict and read /metrics; set MINIAUTOML_API_KEYS_FILE")
    return warnings


def _wanted(opts: StackOptions) -> list[str]:
    return [name for name in ORDER if (name != "s3" or opts.s3) and (name != "serve" or opts.serve)]


def _running(settings: Settings) -> dict[str, dict]:
    """The recorded services that still run; the records of those that do not are removed."""
    running: dict[str, dict] = {}
    for name, record in _read_records(settings).items():
        if Process.from_record(record) is not None:
            running[name] = record
        else:
            _remove_record(settings, name)  # stale: the process is gone
    return running


def _already_running(running: dict[str, dict], opts: StackOptions, wanted: list[str], to_start: list[str]) -> dict:
    """The services that run already (reported, never restarted), each with a note where the
    options ask for something they were not started with."""
    services: dict[str, dict] = {}
    for name, record in running.items():
        services[name] = _describe(record, "running")
        if name in wanted and record.get("port") != opts.port(name):
            services[name]["note"] = f"already running on port {record.get('port')}; `miniautoml down` first to change ports"
    if opts.auth is not None and "mlflow" in running and not running["mlflow"].get("auth"):
        services["mlflow"]["note"] = "running without --auth; `miniautoml down` first, then `up --auth`"
    if "s3" in to_start and "mlflow" in running:
        services["mlflow"]["note"] = (
            "started without S3: its default artifact root stays local until `miniautoml down` + `up --s3`"
        )
    return services


class _Starting:
    """The services one `up` starts, in order, and what it changed: undone together on failure."""

    def __init__(self, settings: Settings, opts: StackOptions, running: dict[str, dict], say: Callable[[str], None]):
        self.settings, self.opts, self.running, self.say = settings, opts, running, say
        self.keys, self.dev_keys = s3_keys(settings) if (opts.s3 or "s3" in running) else ({}, False)
        self.started: list[Started] = []
        self.config_backup: tuple[str | None, bool] | None = None  # (old text, backup written?) once changed

    @contextlib.contextmanager
    def undone_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            _rollback(self.settings, self.started)
            if self.config_backup is not None:
                storage.restore_config(self.settings, self.config_backup[0])
                if self.config_backup[1]:
                    storage.storage_before_path(self.settings).unlink(missing_ok=True)
            raise

    def start_s3(self) -> None:
        launch = s3_launch(self.settings, self.opts, self.keys)
        self.say(f"starting s3 ({launch.extra['kind']}) on {launch.url} ...")
        self.started.append(_spawn(self.settings, launch))
        processes.wait_ready([self.started[-1][1]], self.opts.timeout)

    def use_stack_storage(self) -> None:
        """The workspace's storage on the stack's S3 server (its endpoint in miniautoml.toml), and
        its bucket made."""
        endpoint = self.running["s3"]["url"] if "s3" in self.running else self.started[-1][0].url
        old, changed = storage.set_storage_endpoint(self.settings, endpoint)
        if changed:
            self.config_backup = (old, storage.save_storage_before(self.settings, old, endpoint))
        self.settings = load_settings(self.settings.workspace)
        storage.ensure_bucket(self.settings, endpoint, self.keys)

    def start_side_by_side(self, names: list[str]) -> dict[str, dict]:
        """Start MLflow and the prediction service together and wait for both; returns the
        services that are external (a tracking server the workspace names) instead."""
        external: dict[str, dict] = {}
        batch = []
        for name in names:
            if name == "mlflow":
                launch = mlflow_launch(self.settings, self.opts, self.keys)
            else:
                launch = serve_launch(self.settings, self.opts.host, self.opts.serve_port, self.keys)
            if launch is None:
                external[name] = {"state": "external", "url": redact_uri(self.settings.tracking_uri)}
                continue
            self.say(f"starting {name} on {launch.url} ...")
            self.started.append(_spawn(self.settings, launch))
            batch.append(self.started[-1][1])
        processes.wait_ready(batch, self.opts.timeout)
        return external

    def check_admin_login(self) -> None:
        for launch, _process, _record in self.started:
            if launch.name == "mlflow" and self.opts.auth is not None:
                checks.check_admin_login(launch, self.opts.auth)

    def reported(self) -> dict[str, dict]:
        return {launch.name: _describe(record, "started") for launch, _process, record in self.started}


def _up_result(settings: Settings, services: dict[str, dict], dev_keys: dict[str, str] | None) -> dict:
    result: dict[str, Any] = {"workspace": str(settings.workspace), "services": services, "urls": _urls(services, settings)}
    if "s3" in services:
        result["storage"] = {
            "endpoint": services["s3"]["url"],
            "bucket": settings.storage.bucket,
            "config": str(settings.workspace / CONFIG_FILE),
        }
    if dev_keys:
        result["env"] = dev_keys  # the dev-only default keys: export them for dataset commands
    return result


def up(settings: Settings, opts: StackOptions, progress: Callable[[str], None] | None = None) -> dict:
    """Start the requested services that are not running yet; report all that run.

    `progress` gets a line per service as it starts (after every check has passed), and first a
    `warning: ...` line per service a non-loopback host leaves open (`exposure_warnings`).
    """
    say = progress or (lambda _line: None)
    wanted = _wanted(opts)
    for warning in exposure_warnings(opts, wanted):
        say(f"warning: {warning}")
    checks.check_request(opts, wanted)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with _stack_lock(settings):
        running = _running(settings)
        to_start = [name for name in wanted if name not in running]
        checks.check_startable(opts, to_start)
        services = _already_running(running, opts, wanted, to_start)
        starting = _Starting(settings, opts, running, say)
        with starting.undone_on_failure():
            if "s3" in to_start:
                starting.start_s3()
            if opts.s3:
                starting.use_stack_storage()  # before MLflow: its artifacts go to the stack's S3
            services |= starting.start_side_by_side([name for name in ("mlflow", "serve") if name in to_start])
            starting.check_admin_login()
        services |= starting.reported()
        return _up_result(starting.settings, _ordered(services), starting.keys if starting.dev_keys else None)


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
        if "s3" in records or storage.storage_before_path(settings).exists():
            # The workspace named the server just stopped: back to the storage of before `up --s3`.
            result["storage"], result["warnings"] = storage.after_s3(settings, records.get("s3"))
    return result


def status(settings: Settings) -> dict:
    """What runs: one entry per recorded service with pid, URL, liveness and health."""
    services: dict[str, dict] = {}
    for name, record in _read_records(settings).items():
        alive = Process.from_record(record) is not None
        entry = _describe(record, "running" if alive else "dead", alive=alive)
        entry["healthy"] = alive and processes.http_ok(record.get("health_url", ""))
        services[name] = entry
    live = {name: s for name, s in services.items() if s["alive"]}
    return {
        "workspace": str(settings.workspace),
        "running": bool(live),
        "services": services,
        "urls": _urls(live, settings),
    }
