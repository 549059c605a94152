"""The most telling line of a job's stderr log (the failure message's tail, jobs/outcome.py)."""

from __future__ import annotations

import re
from pathlib import Path

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
