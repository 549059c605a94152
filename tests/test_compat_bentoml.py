"""The patches of BentoML internals (miniautoml.compat.bentoml), on BentoML's real classes, in
process: each pin test fails when BentoML's code changes under the patch; the others say why the
patch exists and what it does."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from test_serving_parts import Sent, http_scope, receiver

from miniautoml import compat
from miniautoml.compat import bentoml as compat_bentoml
from miniautoml.serving.server.answers import Reply

OUTSIDE = compat.guard("a patch pinned elsewhere", "bentoml<1", unpatched="BentoML as it is")

# --------------------------------------------------------------------------------------------
# Timeout timers: TimeoutMiddleware
# --------------------------------------------------------------------------------------------


@pytest.fixture
def timeout_middleware(monkeypatch: pytest.MonkeyPatch) -> type:
    """BentoML's TimeoutMiddleware as BentoML wrote it (unpatched); restored afterwards."""
    cls = compat_bentoml.timeout_middleware()
    original = cls.__dict__.get("_miniautoml_original_call", cls.__call__)
    monkeypatch.setattr(cls, "__call__", original)
    monkeypatch.setattr(cls, "_miniautoml_cancels_timers", False, raising=False)
    monkeypatch.setattr(cls, "_miniautoml_original_call", original, raising=False)
    return cls


def test_pin_timeout_middleware_is_the_code_the_patch_was_written_for(timeout_middleware: type) -> None:
    assert compat_bentoml.fingerprint(timeout_middleware) == compat_bentoml.TIMEOUT_MIDDLEWARE_SHA256, (
        "BentoML changed TimeoutMiddleware (bentoml._internal.server.http.traffic). Read the new code: "
        "if it cancels its timer, delete the patch from miniautoml/compat/bentoml.py; else port "
        "cancelling_call to it, set TIMEOUT_MIDDLEWARE_SHA256 to the new fingerprint and widen PINNED."
    )


async def fast_app(scope: dict, receive: Any, send: Any) -> None:
    await Reply(200, {"ok": True}).response()(scope, receive, send)


def timers_left(middleware_call: Any, app: Any, timeout: float) -> tuple[Sent, list[asyncio.TimerHandle]]:
    """Run one request through `middleware_call`; what it sent, and the timers it scheduled."""
    cls = compat_bentoml.timeout_middleware()
    handles: list[asyncio.TimerHandle] = []
    sent = Sent()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        real = loop.call_later

        def recording(delay: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
            handle = real(delay, callback, *args, **kwargs)
            if getattr(callback, "__name__", "") == "_set_timer_out":
                handles.append(handle)
            return handle

        loop.call_later = recording  # type: ignore[method-assign]
        try:
            await middleware_call(cls(app, timeout=timeout), http_scope(), receiver(b""), sent)
        finally:
            del loop.call_later

    asyncio.run(run())
    return sent, handles


def test_bentoml_leaves_the_timer_of_a_finished_request_pending(timeout_middleware: type) -> None:
    """Why the patch exists. When this fails BentoML cancels its timer: drop the patch."""
    sent, handles = timers_left(timeout_middleware.__call__, fast_app, timeout=60)
    assert sent.status == 200
    assert len(handles) == 1 and not handles[0].cancelled()


def test_the_patched_middleware_cancels_the_timer_of_a_finished_request(timeout_middleware: type) -> None:
    sent, handles = timers_left(compat_bentoml.cancelling_call, fast_app, timeout=60)
    assert (sent.status, sent.json) == (200, {"ok": True})
    assert len(handles) == 1 and handles[0].cancelled()


def test_the_patched_middleware_answers_504_when_the_app_is_too_slow(timeout_middleware: type) -> None:
    cancelled: list[bool] = []

    async def slow_app(scope: dict, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    sent, handles = timers_left(compat_bentoml.cancelling_call, slow_app, timeout=0.05)
    assert (sent.status, sent.json) == (504, {"error": "Not able to process the request in 0.05 seconds"})
    assert cancelled == [True] and len(handles) == 1


def test_the_patched_middleware_passes_other_scopes_through(timeout_middleware: type) -> None:
    seen: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    asyncio.run(compat_bentoml.cancelling_call(timeout_middleware(app, timeout=0.01), {"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]


def test_the_timer_patch_is_installed_once(timeout_middleware: type) -> None:
    original = timeout_middleware.__call__
    assert compat_bentoml.cancel_timeout_timers() is True
    assert timeout_middleware.__call__ is compat_bentoml.cancelling_call
    assert compat_bentoml.cancel_timeout_timers() is True
    assert timeout_middleware._miniautoml_original_call is original


def test_outside_its_versions_the_timer_patch_leaves_bentoml_alone_and_says_so_once(
    timeout_middleware: type, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(compat_bentoml, "TIMEOUT_TIMERS", compat.guard("timer patch", "bentoml<1", unpatched="as is"))
    original = timeout_middleware.__call__
    with caplog.at_level(logging.WARNING, logger="miniautoml.compat"):
        assert compat_bentoml.cancel_timeout_timers() is False
        assert compat_bentoml.cancel_timeout_timers() is False
    assert timeout_middleware.__call__ is original
    (record,) = caplog.records
    assert "timer patch NOT applied (bentoml 1.4.40 is outside <1" in record.getMessage()


# --------------------------------------------------------------------------------------------
# Lone waits: the batching Optimizer
# --------------------------------------------------------------------------------------------


@pytest.fixture
def optimizer_class(monkeypatch: pytest.MonkeyPatch) -> type:
    """BentoML's Optimizer as BentoML wrote it (unpatched); restored afterwards."""
    cls = compat_bentoml.batching_optimizer()
    monkeypatch.setattr(cls, "log_outbound", getattr(cls.log_outbound, "__wrapped__", cls.log_outbound))
    monkeypatch.setattr(cls, "INTERVAL_REFRESH_PARAMS", cls.INTERVAL_REFRESH_PARAMS)
    monkeypatch.setattr(cls, "_miniautoml_lone_waits_free", False, raising=False)
    return cls


def test_pin_optimizer_logs_batches_and_refreshes_as_the_patch_expects(optimizer_class: type) -> None:
    import inspect

    assert list(inspect.signature(optimizer_class.log_outbound).parameters) == ["self", "n", "wait", "duration"]
    assert optimizer_class.INTERVAL_REFRESH_PARAMS == pytest.approx(5.0)


def wait_after_burst(cls: type) -> tuple[float, float]:
    """The optimizer's wait after a 16-client burst, and after 50 lone requests that each
    waited that long (as the dispatcher makes a lone request wait `optimizer.wait`)."""
    optimizer: Any = cls(max_latency=10.0)
    for _ in range(60):
        optimizer.log_outbound(n=16, wait=0.010, duration=0.002)
    optimizer.trigger_refresh()
    burst = optimizer.wait
    for _ in range(50):
        optimizer.log_outbound(n=1, wait=optimizer.wait, duration=0.0005)
    optimizer.trigger_refresh()
    return burst, optimizer.wait


def test_bentoml_optimizer_keeps_a_lone_client_waiting_after_a_burst(optimizer_class: type) -> None:
    """Why the patch exists: the lone client's own waits keep the wait up."""
    burst, after = wait_after_burst(optimizer_class)
    assert burst == pytest.approx(0.010, rel=0.05) and after == pytest.approx(burst, rel=0.05)


def test_patched_optimizer_stops_waiting_for_a_lone_client(optimizer_class: type) -> None:
    assert compat_bentoml.free_lone_waits() is True
    burst, after = wait_after_burst(optimizer_class)
    assert burst == pytest.approx(0.010, rel=0.05)
    assert after == pytest.approx(0.0, abs=1e-9)
    assert optimizer_class.INTERVAL_REFRESH_PARAMS == compat_bentoml.REFRESH_SECONDS


def test_patched_optimizer_still_learns_from_batches(optimizer_class: type) -> None:
    compat_bentoml.free_lone_waits()
    optimizer: Any = optimizer_class(max_latency=10.0)
    for _ in range(60):
        optimizer.log_outbound(n=8, wait=0.004, duration=0.001)
    optimizer.trigger_refresh()
    assert optimizer.wait == pytest.approx(0.004, rel=0.05)


def test_outside_its_versions_the_optimizer_is_left_alone(optimizer_class: type, monkeypatch: pytest.MonkeyPatch) -> None:
    original = optimizer_class.log_outbound
    monkeypatch.setattr(compat_bentoml, "LONE_WAITS", OUTSIDE)
    assert compat_bentoml.free_lone_waits() is False
    assert optimizer_class.log_outbound is original


# --------------------------------------------------------------------------------------------
# Store home: BentoMLContainer
# --------------------------------------------------------------------------------------------


def test_pin_store_home_is_the_bentoml_home_bentoml_resolved(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bentoml._internal.configuration.containers import BentoMLContainer

    import bentoml  # noqa: F401 - store_home reads only a BentoML already imported

    monkeypatch.setattr(BentoMLContainer.bentoml_home, "get", lambda: str(tmp_path))
    assert compat_bentoml.store_home() == str(tmp_path)
    monkeypatch.setattr(compat_bentoml, "STORE_HOME", OUTSIDE)
    assert compat_bentoml.store_home() is None
