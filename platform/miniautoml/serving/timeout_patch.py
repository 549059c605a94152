"""A guarded patch of BentoML internals: its request-timeout middleware cancels its timer when done.

BentoML's `TimeoutMiddleware` (bentoml._internal.server.http.traffic) schedules
`loop.call_later(timeout, ...)` per request and never cancels it, so every request leaves a timer
handle, a future and a context alive for the whole timeout (60 s by default): ~170k objects at
3k req/s, which every full garbage collection then walks (pauses of 100-200 ms, the p99 of an
otherwise ~1 ms service). Still so in BentoML 1.4.40, the newest release when this was written.

`apply()` replaces the middleware's `__call__` with the same logic plus `timer.cancel()`, but only
when the middleware's source is exactly the one this was written for (its sha256, `WRITTEN_FOR`);
otherwise it logs a warning saying why and leaves BentoML as it is. When BentoML changes that
code, tests/test_serving_parts.py fails: read the new code, drop this module if the timer is
cancelled upstream, else port `cancelling_call` and update `WRITTEN_FOR`.
Off: MINIAUTOML_PATCH_TIMEOUT_TIMERS=0 (`ServingOptions.patch_timeout_timers`).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from typing import Any

from starlette.responses import JSONResponse

log = logging.getLogger(__name__)

ENV_VAR = "MINIAUTOML_PATCH_TIMEOUT_TIMERS"
# sha256 of `inspect.getsource(TimeoutMiddleware)` in BentoML 1.4.40: the whole class, since the
# patch relies on its `__init__` (app, timeout) and `_set_timer_out` as well as on `__call__`.
WRITTEN_FOR = "4dab3e6bdd06efc590294d89beed9a399be6959b62bce9da024b33292e1be34b"
WRITTEN_FOR_VERSION = "1.4.40"
_MARK = "_miniautoml_cancels_timers"


def middleware_class() -> type:
    """BentoML's request-timeout middleware class (imported here: a BentoML internal)."""
    from bentoml._internal.server.http import traffic

    return traffic.TimeoutMiddleware


def fingerprint(cls: type) -> str:
    """sha256 of the class's source code (OSError when its source cannot be read)."""
    return hashlib.sha256(inspect.getsource(cls).encode("utf-8")).hexdigest()


async def cancelling_call(self: Any, scope: dict, receive: Any, send: Any) -> None:
    """`TimeoutMiddleware.__call__` of BentoML 1.4.40, plus `timer.cancel()` when done."""
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


def apply(expected: str = WRITTEN_FOR) -> bool:
    """Install `cancelling_call` if BentoML's middleware is the code it was written for; whether
    it is installed. Logs a warning naming the reason (and the switch) when it is not."""
    import bentoml

    cls = middleware_class()
    if getattr(cls, _MARK, False):
        return True
    try:
        found = fingerprint(cls)
    except (OSError, TypeError) as exc:
        reason = f"its source cannot be read ({exc})"
    else:
        reason = "" if found == expected else (
            f"its code differs from BentoML {WRITTEN_FOR_VERSION}'s, which the patch was written for "
            f"(sha256 {found[:12]}, expected {expected[:12]})"
        )
    if reason:
        log.warning(
            "BentoML %s: request-timeout timers NOT patched (%s): every request keeps its timer alive "
            "for the whole request timeout. Check miniautoml/serving/timeout_patch.py against the new "
            "code; %s=0 skips the patch and this warning.",
            bentoml.__version__, reason, ENV_VAR,
        )
        return False
    setattr(cls, "_miniautoml_original_call", cls.__call__)
    cls.__call__ = cancelling_call
    setattr(cls, _MARK, True)
    return True
