"""A real `mlflow server` for tests: one worker, no job runner, stopped with its process group."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from conftest import BIN, free_port, job_env, wait_http

from miniautoml.processes import process_tree, stop_tree


@contextlib.contextmanager
def running_mlflow_server(root: Path, backend_store_uri: str) -> Iterator[str]:
    """`mlflow server --workers 1` on 127.0.0.1 over `backend_store_uri`, artifacts under `root`;
    yields its URL once /health answers (a failed start shows the end of its log)."""
    port = free_port()
    log_path = root / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(root / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=job_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_http(f"{url}/health", timeout=120, proc=proc)
            except (RuntimeError, AssertionError) as exc:
                log.flush()
                raise RuntimeError(f"{exc}\n--- server.log ---\n{log_path.read_text()[-3000:]}") from exc
            yield url
        finally:
            stop_tree(process_tree(proc.pid), grace=20, group=proc.pid)
            proc.wait()
