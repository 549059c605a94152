"""A patch of CPython internals: a forked child ends as the interpreter ends. Pinned on Python
3.11 (tests/test_compat_python.py); outside it, jobs start cold (no forks to end).

A warm job and its trainer are forks that must never unwind into the runner's code, so they end
with `os._exit`, which skips what `Py_Finalize` does first: join the non-daemon threads
(`threading._shutdown`) and run the exit handlers (`atexit._run_exitfuncs`: MLflow's end of an
open run, logging's flush). `finalize()` does those two.
"""

from __future__ import annotations

from miniautoml.compat import guard

FINALIZE = guard("fork finalization", "python>=3.11,<3.12", unpatched="jobs start cold")


def finalize() -> None:
    """What the interpreter does at exit before it stops: threads joined, exit handlers run."""
    FINALIZE.require()
    import atexit
    import threading

    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
