"""Patches of BentoML internals: timeout timers cancelled, no slow lone client after a burst, the
store's home. Pinned on BentoML 1.4.40 (tests/test_compat_bentoml.py); outside it, BentoML as is.

**Timeout timers.** BentoML's `TimeoutMiddleware` (bentoml._internal.server.http.traffic) schedules
`loop.call_later(timeout, ...)` per request and never cancels it, so every request leaves a timer
handle, a future and a context alive for the whole timeout (60 s by default): ~170k objects at
3k req/s, which every full garbage collection then walks (pauses of 100-200 ms, the p99 of an
otherwise ~1 ms service). `cancel_timeout_timers()` replaces the middleware's `__call__` with the
same logic plus `timer.cancel()`. Off: MINIAUTOML_PATCH_TIMEOUT_TIMERS=0.

**Lone waits.** BentoML's `CorkDispatcher` holds a request back while `n * (its wait so far) <=
optimizer.wait`, the mean wait of the last 50 batches, refreshed at most every 5 s
(`Optimizer.log_outbound`, bentoml._internal.marshal.dispatcher). After a burst that mean is high;
a lone client's every request then waits about that long, alone, and logs that wait again: the
wait feeds itself. Measured (benchmarks/bench_serving.py, a busy 2-core machine): one client after
a 16-client burst ran at 0.2x its rate before the burst for the whole 10 s (59 vs 281 req/s);
patched, 0.64x in the first 2 s, then its rate before. `free_lone_waits()` logs a batch of one as a
wait of 0 (waiting bought it no company) and refreshes every second; batches of several requests
teach the optimizer as before. Off: MINIAUTOML_BATCH_WAIT_PATCH=0.

**Store home.** `store_home()`: the BENTOML_HOME this process's BentoML already resolved.
"""

from __future__ import annotations

import sys
from typing import Any

from miniautoml.compat import guard

PINNED = "bentoml==1.4.40"
TIMEOUT_TIMERS = guard("BentoML timeout-timer patch", PINNED,
                       unpatched="every request keeps its timer alive for the whole request timeout")
LONE_WAITS = guard("BentoML batch-wait patch", PINNED, unpatched="one client may stay slow after a burst")
STORE_HOME = guard("BentoML store-home check", PINNED, unpatched="a second workspace's store is not detected")
# sha256 of `inspect.getsource(TimeoutMiddleware)` in BentoML 1.4.40: the whole class, since
# `cancelling_call` relies on its `__init__` (app, timeout) and `_set_timer_out` as well.
TIMEOUT_MIDDLEWARE_SHA256 = "4dab3e6bdd06efc590294d89beed9a399be6959b62bce9da024b33292e1be34b"
REFRESH_SECONDS = 1.0
_CANCELS, _FREES = "_miniautoml_cancels_timers", "_miniautoml_lone_waits_free"


def timeout_middleware() -> type:
    from bentoml._internal.server.http import traffic

    return traffic.TimeoutMiddleware


def batching_optimizer() -> type:
    from bentoml._internal.marshal.dispatcher import Optimizer

    return Optimizer


def fingerprint(cls: type) -> str:
    """sha256 of a class's source code: what a pin test compares."""
    import hashlib
    import inspect

    return hashlib.sha256(inspect.getsource(cls).encode("utf-8")).hexdigest()


async def cancelling_call(self: Any, scope: dict, receive: Any, send: Any) -> None:
    """`TimeoutMiddleware.__call__` of BentoML 1.4.40, plus `timer.cancel()` when done."""
    import asyncio  # here: adapters.bentoml imports this module in every CLI process

    from starlette.responses import JSONResponse

    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except asyncio.TimeoutError:
        if fut.cancel():
            resp = JSONResponse({"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504)
            await resp(scope, receive, send)
    else:
        await fut
    finally:
        timer.cancel()


def cancel_timeout_timers() -> bool:
    """Install `cancelling_call` in BentoML's timeout middleware; whether it is installed."""
    if not TIMEOUT_TIMERS.applies():
        return False
    cls = timeout_middleware()
    if not getattr(cls, _CANCELS, False):
        cls._miniautoml_original_call = cls.__call__
        cls.__call__ = cancelling_call
        setattr(cls, _CANCELS, True)
    return True


def lone_waits_free(original: Any) -> Any:
    """`original` (`Optimizer.log_outbound(self, n, wait, duration)`) with lone waits logged as 0."""

    def log_outbound(self: Any, n: int, wait: float, duration: float) -> None:
        original(self, n=n, wait=0.0 if n <= 1 else wait, duration=duration)

    log_outbound.__wrapped__ = original  # type: ignore[attr-defined]
    return log_outbound


def free_lone_waits() -> bool:
    """Install `lone_waits_free` in BentoML's batching optimizer; whether it is installed."""
    if not LONE_WAITS.applies():
        return False
    cls = batching_optimizer()
    if not getattr(cls, _FREES, False):
        cls.log_outbound = lone_waits_free(cls.log_outbound)
        cls.INTERVAL_REFRESH_PARAMS = REFRESH_SECONDS
        setattr(cls, _FREES, True)
    return True


def store_home() -> str | None:
    """The BENTOML_HOME this process's BentoML resolved; None when BentoML is not imported yet
    (it reads the variable on first use) or outside the pinned versions."""
    if "bentoml" not in sys.modules or not STORE_HOME.applies():
        return None
    from bentoml._internal.configuration.containers import BentoMLContainer

    return str(BentoMLContainer.bentoml_home.get())
