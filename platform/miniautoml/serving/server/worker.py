"""Per-worker set-up of the prediction service: its Prometheus metrics and garbage-collector tuning."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from miniautoml.serving.options import ServingOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metrics:
    """The service's own Prometheus metrics (BentoML's request metrics come with it)."""

    loads: Any  # Counter miniautoml_model_loads{run_id}
    alias_swaps: Any  # Counter miniautoml_alias_swaps{model_id}
    gc_pause: Any  # Histogram miniautoml_gc_pause_seconds{generation}


_METRICS: list[Metrics] = []


def metrics() -> Metrics:
    """The metrics of this worker, created on first use (after BentoML set up multiprocess mode)."""
    if not _METRICS:
        import prometheus_client

        _METRICS.append(
            Metrics(
                loads=prometheus_client.Counter(
                    "miniautoml_model_loads", "Models loaded into this server's cache", ["run_id"]
                ),
                alias_swaps=prometheus_client.Counter(
                    "miniautoml_alias_swaps", "Aliases switched to another model version", ["model_id"]
                ),
                gc_pause=prometheus_client.Histogram(
                    "miniautoml_gc_pause_seconds",
                    "Garbage collection pauses of the server's workers (the usual source of a p99 tail)",
                    ["generation"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
                ),
            )
        )
    return _METRICS[0]


def observe_gc_pauses(histogram: Any) -> Callable[[str, dict], None]:
    """Every collection's pause into `histogram`, labelled by generation; the gc callback added."""
    started = [0.0]
    children = {g: histogram.labels(generation=str(g)) for g in (0, 1, 2)}

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            children[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
    return callback


def tune_gc(options: ServingOptions) -> None:
    """Keep the collector's full passes short: objects alive after start-up or a model load
    (modules, functions, the model) are moved to a generation the collector never walks.

    A full collection walks every tracked object. After start-up there are ~250k, and the first
    model load imports ~260k more (MLflow's pyfunc, SQLAlchemy, training_code); walking them
    took 100-200 ms, several times a minute under load. Called at start-up and after each
    model load (rare). A model's own objects are freed by reference counting when it is evicted
    (they form no cycles), so freezing them leaks nothing.
    """
    if options.gc_freeze:
        gc.collect()
        gc.freeze()
    if options.gc_threshold:
        gc.set_threshold(*options.gc_threshold)
    log.info(
        "gc: %d objects frozen, thresholds %s (pid %d)", gc.get_freeze_count(), gc.get_threshold(), os.getpid()
    )
