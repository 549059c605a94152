"""Crash points for fault-injection tests: `MINIAUTOML_CRASH_AT=<point>` kills the process there.

The test suite uses them to prove that a process killed mid-operation leaves a workspace that
reads fine and that the next operation repairs. Unset, they cost one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "MINIAUTOML_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
