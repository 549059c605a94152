"""One-line failure messages from a job's exit status and the tail of its stderr."""

from __future__ import annotations

import re
from pathlib import Path

from miniautoml.processes import signal_name
from miniautoml.redact import redact_text

_TAIL_BYTES = 64 * 1024
# `mlflow run`'s own log lines ("2025/01/01 10:00:00 INFO mlflow.projects...: === Run ... ===")
_MLFLOW_LOG = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} (DEBUG|INFO|WARNING|ERROR|CRITICAL) mlflow")
# blank lines, warnings' source echo, and the shell's notes on a child killed by a signal
_NOISE = re.compile(r"^(\s*warnings\.warn\(.*|\s*|Killed|Terminated|Hangup|Aborted.*)$")


def last_error_line(stderr_path: str | Path | None) -> str:
    """The most telling line of a stderr log: the last line of its last traceback, else its last
    line that is not `mlflow run`'s own logging; "" if there is nothing."""
    if not stderr_path:
        return ""
    try:
        with open(stderr_path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - _TAIL_BYTES))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.rstrip() for line in text.splitlines()]
    lines = [line for line in lines if not _MLFLOW_LOG.match(line) and not _NOISE.match(line)]
    if not lines:
        return ""
    tb = max((i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")), default=-1)
    if tb >= 0:
        # The exception line is the first unindented line after the traceback header.
        for line in lines[tb + 1 :]:
            if line and not line.startswith((" ", "\t")):
                return _clip(line)
    return _clip(lines[-1])


def _clip(line: str, limit: int = 500) -> str:
    line = redact_text(line.strip())  # the line becomes the run's message tag
    return line if len(line) <= limit else line[: limit - 3] + "..."


def failure_message(
    returncode: int | None,
    stderr_path: str | Path | None,
    *,
    cancelled: bool = False,
    trainer_status: int | None = None,
) -> str:
    """One line on how a job failed.

    `returncode` is `mlflow run`'s (negative: the job's process group got a signal);
    `trainer_status` is the shell status of the trainer itself (128+N: killed by signal N), None
    when the trainer never started. Without a returncode, just the last telling stderr line.
    """
    last = last_error_line(stderr_path)
    if returncode is None:
        return last
    if cancelled:
        return "cancelled by user"
    if returncode < 0:
        head, sep = f"job killed by {signal_name(returncode)}", "; last stderr line: "
    elif trainer_status is not None and trainer_status > 128:
        head, sep = f"trainer killed by {signal_name(128 - trainer_status)}", "; last stderr line: "
    elif trainer_status is not None and trainer_status > 0:
        head, sep = f"training failed (trainer exit code {trainer_status})", ": "
    elif trainer_status == 0:
        head, sep = f"mlflow run failed after the trainer succeeded (exit code {returncode})", ": "
    else:  # the trainer never started (or the MLproject did not use the runner's wrapper)
        head, sep = f"mlflow run failed (exit code {returncode})", ": "
    return f"{head}{sep}{last}" if last else head
