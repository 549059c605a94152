"""Run artifacts for people: the learning curve and the test confusion matrix (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on training machines; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training_code.engine import EpochRecord  # noqa: E402

MAX_TICK_LABELS = 40  # beyond this the label names overlap into a grey smear


def learning_curve(history: Sequence[EpochRecord], path: Path, best_epoch: int = 0) -> None:
    epochs = [r.epoch for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r.loss for r in history], marker="o", label="train")
    ax_loss.plot(epochs, [r.val_loss for r in history], marker="o", label="val")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.plot(epochs, [r.train_accuracy for r in history], marker="o", label="train")
    ax_acc.plot(epochs, [r.val_accuracy for r in history], marker="o", label="val")
    ax_acc.set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle=":", label="best epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_matrix(
    truth: Sequence[int], predicted: Sequence[int], label_names: Sequence[str], path: Path
) -> np.ndarray:
    """Row-normalised confusion matrix (rows: true label); returns the raw counts."""
    n = len(label_names)
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(4 + n * 0.12, 24)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(title=f"confusion matrix (test, {len(truth)} examples)", xlabel="predicted", ylabel="true")
    if n <= MAX_TICK_LABELS:
        ax.set_xticks(range(n), label_names, rotation=90, fontsize=8)
        ax.set_yticks(range(n), label_names, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return counts
