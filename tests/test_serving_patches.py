"""The guarded patch of BentoML's batching optimizer (issue 13), on BentoML's real class: a burst
no longer leaves a lone client waiting for company. In process, no server."""

from __future__ import annotations

from typing import Any

import pytest

from miniautoml.serving import batch_wait

# --------------------------------------------------------------------------------------------
# BentoML's batching optimizer: a burst, then one client
# --------------------------------------------------------------------------------------------


@pytest.fixture
def optimizer_class(monkeypatch: pytest.MonkeyPatch) -> type:
    """BentoML's Optimizer as BentoML wrote it (unpatched); restored afterwards."""
    cls = batch_wait.optimizer_class()
    monkeypatch.setattr(cls, "log_outbound", getattr(cls.log_outbound, "__wrapped__", cls.log_outbound))
    monkeypatch.setattr(cls, "INTERVAL_REFRESH_PARAMS", cls.INTERVAL_REFRESH_PARAMS)
    monkeypatch.setattr(cls, "_miniautoml_lone_waits_free", False, raising=False)
    return cls


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
    assert batch_wait.apply() is True
    burst, after = wait_after_burst(optimizer_class)
    assert burst == pytest.approx(0.010, rel=0.05)
    assert after == pytest.approx(0.0, abs=1e-9)
    assert optimizer_class.INTERVAL_REFRESH_PARAMS == batch_wait.REFRESH_SECONDS


def test_patched_optimizer_still_learns_from_batches(optimizer_class: type) -> None:
    batch_wait.apply()
    optimizer: Any = optimizer_class(max_latency=10.0)
    for _ in range(60):
        optimizer.log_outbound(n=8, wait=0.004, duration=0.001)
    optimizer.trigger_refresh()
    assert optimizer.wait == pytest.approx(0.004, rel=0.05)
