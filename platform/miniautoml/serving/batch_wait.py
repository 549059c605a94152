"""A guarded patch of BentoML's adaptive batcher: a burst no longer leaves one client slow for 30 s.

BentoML's `CorkDispatcher` holds a request back while `n * (its wait so far) <= optimizer.wait`,
where `optimizer.wait` is the mean wait of the last 50 batches, refreshed at most every 5 s
(`Optimizer.log_outbound`, bentoml._internal.marshal.dispatcher). After a burst that mean is
high; a lone client's every request then waits about that long, alone, and logs that wait again:
the wait feeds itself and decays only by 5% per refresh. Measured (benchmarks/bench_serving.py,
one busy 2-core machine): one client after a 16-client burst ran at 0.2x its rate before the
burst for the whole 10 s measured (59 vs 281 req/s); patched, 0.64x in the first 2 s, then at
its rate before.

`apply()` wraps `Optimizer.log_outbound` so a batch of one logs a wait of 0 (waiting bought it no
company: the time was pure cost) and refreshes the parameters every second instead of every 5:
after a burst a lone client is back to the fast path within about a second, while batches of
several requests keep teaching the optimizer as before.
Off: MINIAUTOML_BATCH_WAIT_PATCH=0 (`ServingOptions.batch_wait_patch`).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

log = logging.getLogger(__name__)

ENV_VAR = "MINIAUTOML_BATCH_WAIT_PATCH"
REFRESH_SECONDS = 1.0
_MARK = "_miniautoml_lone_waits_free"


def optimizer_class() -> type:
    """BentoML's batching optimizer (a BentoML internal)."""
    from bentoml._internal.marshal.dispatcher import Optimizer

    return Optimizer


def wrap(original: Any) -> Any:
    """`original` (`Optimizer.log_outbound(self, n, wait, duration)`) with lone waits logged as 0."""

    def log_outbound(self: Any, n: int, wait: float, duration: float) -> None:
        original(self, n=n, wait=0.0 if n <= 1 else wait, duration=duration)

    log_outbound.__wrapped__ = original  # type: ignore[attr-defined]
    return log_outbound


def apply() -> bool:
    """Install `wrap` if BentoML's optimizer still has `log_outbound(n, wait, duration)` and a
    refresh interval; whether it is installed (a warning naming why not otherwise)."""
    try:
        cls = optimizer_class()
        params = list(inspect.signature(cls.log_outbound).parameters)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        params, reason = [], f"{type(exc).__name__}: {exc}"
    else:
        reason = "" if params == ["self", "n", "wait", "duration"] and hasattr(cls, "INTERVAL_REFRESH_PARAMS") else (
            f"its Optimizer.log_outbound{tuple(params[1:])} or refresh interval changed"
        )
    if reason:
        log.warning("BentoML batcher NOT patched (%s): one client may stay slow after a burst. "
                    "Check miniautoml/serving/batch_wait.py; %s=0 skips this.", reason, ENV_VAR)
        return False
    if not getattr(cls, _MARK, False):
        cls.log_outbound = wrap(cls.log_outbound)
        cls.INTERVAL_REFRESH_PARAMS = REFRESH_SECONDS
        setattr(cls, _MARK, True)
    return True
