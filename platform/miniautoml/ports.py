"""Whether a TCP port is free to listen on, and who holds it: one line before a server starts."""

from __future__ import annotations

import errno
import socket

from miniautoml.errors import UserInputError


def port_in_use(host: str, port: int) -> bool:
    """True when binding `host:port` fails with EADDRINUSE; UserInputError for an address we may not use."""
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


def port_owner(port: int) -> str:
    """Best effort: ` by pid 123 (nginx)` for the process listening on `port`, else ""."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except Exception:  # noqa: BLE001 - only decorates an error message
        pass
    return ""


def require_free_port(host: str, port: int, flag: str, what: str = "") -> None:
    """UserInputError naming the port, its holder and the option choosing another, when `port` is taken.

    Checked before a server starts: BentoML (circus) would otherwise fail with a traceback, exit 1,
    and a readiness check could even meet the other process's server."""
    if port_in_use(host, port):
        purpose = f" (for {what})" if what else ""
        raise UserInputError(
            f"port {port} on {host}{purpose} is already in use{port_owner(port)}; choose another with {flag}"
        )
