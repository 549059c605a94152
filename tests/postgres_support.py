"""A real PostgreSQL for the test session: `initdb` into a temp dir, `pg_ctl start`, `pg_ctl stop`.

The server binaries come from `MINIAUTOML_PG_BIN` or the newest `/usr/lib/postgresql/<major>/bin`
(Debian's `postgresql` package; `.ci/setup` installs it where missing). PostgreSQL refuses to run
as root, so under root the cluster belongs to the unprivileged `nobody` and every server-side
command runs through `runuser -u nobody --`. The server listens on 127.0.0.1 on a free port with
`trust` auth and its unix socket in the temp dir; the database `mlflow` is created for the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from miniautoml.processes import free_port

PG_USER = "nobody"  # OS user owning the cluster when the tests run as root
SUPERUSER = "postgres"  # database superuser created by initdb
DATABASE = "mlflow"


def pg_bin() -> Path:
    """The directory of initdb/pg_ctl/pg_isready/psql, or a test failure saying what is missing."""
    env = os.environ.get("MINIAUTOML_PG_BIN")
    candidates = [Path(env)] if env else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True)
    for cand in candidates:
        if all((cand / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres", "pg_isready", "psql")):
            return cand
    pytest.fail("PostgreSQL server binaries not found (initdb, pg_ctl, postgres, pg_isready, psql under "
                f"{env or '/usr/lib/postgresql/<major>/bin'}): install Debian's `postgresql` "
                "(.ci/setup does as root) or set MINIAUTOML_PG_BIN", pytrace=False)


@dataclass
class PostgresServer:
    bin: Path
    root: Path  # temp dir: data/, socket dir, server.log
    port: int
    host: str = "127.0.0.1"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def uri(self, database: str = DATABASE) -> str:
        """SQLAlchemy URI (driver psycopg 3: SQLAlchemy 2.1's default for `postgresql://`)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = DATABASE) -> list[list[str]]:
        """Rows of `sql` run by psql over TCP (unaligned, tab-separated)."""
        out = _run([str(self.bin / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-h", self.host,
                    "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql])
        return [line.split("\t") for line in out.splitlines() if line]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", PG_USER, "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], timeout: float = 120, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def start_postgres(bin_dir: Path) -> PostgresServer:
    # Not under pytest's basetemp: that is 0700 root's, which `nobody` cannot traverse.
    root = Path(tempfile.mkdtemp(prefix="miniautoml-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user=PG_USER)
    server = PostgresServer(bin=bin_dir, root=root, port=free_port())
    _run(_as_server_user([str(bin_dir / "initdb"), "-D", str(server.data), "-U", SUPERUSER, "--auth=trust",
                          "-E", "UTF8", "--locale=C", "--no-sync"]), cwd=root)
    options = (f"-c listen_addresses={server.host} -c port={server.port} -c unix_socket_directories={root} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
    try:
        # -w: pg_ctl returns once the server accepts connections (or fails with the log's reason).
        _run(_as_server_user([str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(server.data),
                              "-l", str(server.log), "-o", options]), cwd=root)
        _run([str(bin_dir / "pg_isready"), "-h", server.host, "-p", str(server.port), "-t", "30"])
        server.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
    except BaseException as exc:
        log = server.log.read_text(errors="replace")[-3000:] if server.log.exists() else ""
        stop_postgres(server)
        raise RuntimeError(f"PostgreSQL did not start: {exc}\n--- server.log ---\n{log}") from exc
    return server


def stop_postgres(server: PostgresServer) -> None:
    try:
        if (server.data / "postmaster.pid").exists():
            _run(_as_server_user([str(server.bin / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(server.data)]),
                 cwd=server.root)
    finally:
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server with an empty database `mlflow`, up for the whole test session."""
    server = start_postgres(pg_bin())
    try:
        yield server
    finally:
        stop_postgres(server)
