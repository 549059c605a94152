"""A job's training progress, read from its MLflow run: the per-epoch metrics the trainer logs
(`loss`, `val_accuracy`, ... at step = epoch) and the `epochs` param it logs before training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

# Metrics shown per epoch, in this order; the first one decides which epochs exist.
EPOCH_METRICS = ("loss", "val_accuracy")


@dataclass(frozen=True)
class Epoch:
    """One finished epoch of a job: `total` is the planned number of epochs (early stopping may
    end training before it), None when the run does not say."""

    epoch: int
    total: int | None
    metrics: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        """`epoch 2/10  loss 2.3456  val_accuracy 0.4321`."""
        head = f"epoch {self.epoch}/{self.total}" if self.total else f"epoch {self.epoch}"
        return "  ".join([head, *(f"{k} {_fmt(v)}" for k, v in self.metrics.items())])


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


class EpochReader:
    """Epochs a run logged since the last `read`. Reads the metric histories only when the run's
    latest values changed, so polling a run costs nothing between epochs."""

    def __init__(self, client: "MlflowClient"):
        self.client = client
        self.shown = 0  # epochs already returned
        self._latest: tuple[float | None, ...] | None = None

    def read(self, run: "Run") -> list[Epoch]:
        if run.info.status == "SCHEDULED":
            return []
        latest = tuple(run.data.metrics.get(key) for key in EPOCH_METRICS)
        if latest == self._latest or latest[0] is None:
            return []
        histories = {key: {m.step: m.value for m in self.client.get_metric_history(run.info.run_id, key)}
                     for key in EPOCH_METRICS}
        self._latest = latest
        steps = sorted(s for s in histories[EPOCH_METRICS[0]] if s > self.shown)
        total = _whole(run.data.params.get("epochs"))
        epochs = [Epoch(s, total, {k: h[s] for k, h in histories.items() if s in h}) for s in steps]
        if steps:
            self.shown = steps[-1]
        return epochs


def _whole(text: str | None) -> int | None:
    try:
        return int(str(text).strip("'\""))
    except ValueError:
        return None
