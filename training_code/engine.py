"""The training loop: seeded epochs, per-epoch evaluation, early stopping on val accuracy."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from training_code.model import Optimisation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    start_time: float  # unix seconds
    end_time: float


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    predictions: list[int]


@dataclass
class FitResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = 0.0
    stopped_early: bool = False


def _batch(encoded: Sequence[list[int]] | torch.Tensor, rows: Sequence[int]) -> tuple[torch.Tensor, ...]:
    """The model's inputs for `rows`: (ids, offsets) of token lists, or (embeddings,) of a
    precomputed [n, dim] tensor (intent-minilm's frozen sentence embeddings)."""
    if isinstance(encoded, torch.Tensor):
        return (encoded[torch.as_tensor(list(rows), dtype=torch.long)],)
    ids: list[int] = []
    offsets: list[int] = []
    for i in rows:
        offsets.append(len(ids))
        ids.extend(encoded[i])
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def evaluate(
    model: nn.Module, encoded: Sequence[list[int]] | torch.Tensor, labels: Sequence[int], rows: Sequence[int], batch_size: int = 1024
) -> Evaluation:
    if not rows:
        return Evaluation(loss=float("nan"), accuracy=float("nan"), predictions=[])
    model.eval()
    total_loss, predictions = 0.0, []
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            logits = model(*_batch(encoded, chunk))
            target = torch.tensor([labels[i] for i in chunk], dtype=torch.long)
            total_loss += F.cross_entropy(logits, target, reduction="sum").item()
            predictions.extend(logits.argmax(dim=1).tolist())
    correct = sum(int(p == labels[i]) for p, i in zip(predictions, rows))
    return Evaluation(loss=total_loss / len(rows), accuracy=correct / len(rows), predictions=predictions)


def fit(
    model: nn.Module,
    optimisation: Optimisation,
    encoded: Sequence[list[int]] | torch.Tensor,
    labels: Sequence[int],
    train_rows: Sequence[int],
    val_rows: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    patience: int,
    seed: int,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> FitResult:
    """Train in place; on return the model holds the weights of its best validation epoch."""
    generator = torch.Generator().manual_seed(seed)
    result = FitResult()
    best_state = copy.deepcopy(model.state_dict())
    best_score = -math.inf
    for epoch in range(1, epochs + 1):
        start = time.time()
        model.train()
        order = [train_rows[i] for i in torch.randperm(len(train_rows), generator=generator).tolist()]
        total_loss, correct = 0.0, 0
        for b in range(0, len(order), batch_size):
            chunk = order[b : b + batch_size]
            target = torch.tensor([labels[i] for i in chunk], dtype=torch.long)
            optimisation.zero_grad()
            logits = model(*_batch(encoded, chunk))
            loss = F.cross_entropy(logits, target)
            loss.backward()
            optimisation.step()
            total_loss += loss.item() * len(chunk)
            correct += int((logits.argmax(dim=1) == target).sum())
        val = evaluate(model, encoded, labels, val_rows)
        record = EpochRecord(
            epoch=epoch,
            loss=total_loss / len(order),
            train_accuracy=correct / len(order),
            val_loss=val.loss,
            val_accuracy=val.accuracy,
            start_time=start,
            end_time=time.time(),
        )
        result.history.append(record)
        log.info(
            "epoch %d/%d  loss %.4f  train_accuracy %.4f  val_accuracy %.4f  (%.1fs)",
            epoch, epochs, record.loss, record.train_accuracy, record.val_accuracy, record.end_time - start,
        )
        if on_epoch is not None:
            on_epoch(record)
        # Without validation rows (tiny datasets) the training loss decides.
        score = val.accuracy if not math.isnan(val.accuracy) else -record.loss
        if score > best_score:
            best_score, result.best_val_accuracy, result.best_epoch = score, val.accuracy, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif patience > 0 and epoch - result.best_epoch >= patience and epoch < epochs:
            result.stopped_early = True
            log.info("early stop: no better val_accuracy for %d epochs (best %d)", patience, result.best_epoch)
            break
    model.load_state_dict(best_state)
    return result
