"""A server command on a port another process listens on: one line naming the port, its holder and
the option choosing another, exit 2, nothing started or written (as `up` does)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from conftest import run_cli


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port this test process listens on (a real listener, as another server would be)."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        yield blocker.getsockname()[1]


def assert_names_the_holder(result, port: int, flag: str = "--port") -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.error_line.startswith(f"error: port {port} on 127.0.0.1")
    assert f"already in use by pid {os.getpid()} (" in result.error_line
    assert result.error_line.endswith(f"choose another with {flag}")


def test_serve_on_a_busy_port_names_the_process_holding_it(workspace, busy_port):
    assert run_cli(workspace, "init").returncode == 0
    result = run_cli(workspace, "serve", "--port", str(busy_port), timeout=120)
    assert_names_the_holder(result, busy_port)
    assert len(result.stderr.strip().splitlines()) == 1


def test_serving_a_bento_on_a_busy_port_names_the_process_holding_it(workspace, busy_port):
    assert run_cli(workspace, "init").returncode == 0
    result = run_cli(workspace, "serve", "--bento", "intent:latest", "--port", str(busy_port), timeout=120)
    assert_names_the_holder(result, busy_port)


def test_lab_on_a_busy_port_fails_before_any_step(workspace, busy_port):
    result = run_cli(workspace, "lab", "--port", str(busy_port), timeout=120)
    assert_names_the_holder(result, busy_port)
    assert "(for the lab's prediction service)" in result.error_line
    assert run_cli(workspace, "dataset", "list").json == []  # no dataset created
