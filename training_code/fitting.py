"""Fit a network on examples: split, featurise (our tokenizer, or the sentence encoder of
intent-minilm), build the network, train it with per-epoch MLflow metrics, evaluate on the test split."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from miniautoml.contract.tags import EPOCHS_ARTIFACT

if TYPE_CHECKING:
    import torch

    from miniautoml.config import Settings
    from training_code.data import Examples, Split
    from training_code.engine import Evaluation, FitResult
    from training_code.model import ModelSpec
    from training_code.tokenizer import Tokenizer

log = logging.getLogger("training_code")


@dataclass
class Trained:
    """A fitted network and what it was fitted on, before anything is logged about it."""

    tokenizer: "Tokenizer | None"  # None for intent-minilm (the encoder tokenises)
    spec: "ModelSpec"
    network: "torch.nn.Module"
    parts: "Split"
    fit: "FitResult"
    test: "Evaluation"
    train_seconds: float
    encoder: dict[str, str] | None = None  # intent-minilm: the encoder package and its version


def _embed(params: Mapping[str, Any], examples: "Examples", settings: "Settings | None") -> "torch.Tensor":
    """intent-minilm: the dataset's sentence embeddings, from the workspace cache when this data
    was embedded by this encoder version before (`.miniautoml/cache/embeddings`)."""
    import mlflow
    import torch

    from training_code import minilm

    threads = int(params["model"].get("encode_threads") or 0) or (os.cpu_count() or 1)
    cache_dir = settings.state_dir / "cache" / "embeddings" if settings is not None else None
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.time()
    try:
        embeddings, hit = minilm.embed_cached(minilm.SentenceEncoder, examples.texts, cache_dir, examples.digest)
    finally:
        torch.set_num_threads(previous)
    seconds = time.time() - started
    log.info(
        "embedded %d texts with %s %s: %s in %.1fs",
        len(examples.texts), minilm.ENCODER_PACKAGE, minilm.encoder_version(),
        "cache hit" if hit else f"{len(examples.texts) / max(seconds, 1e-9):.0f} texts/s", seconds,
    )  # fmt: skip
    mlflow.log_metric("embed_seconds", seconds)
    mlflow.set_tag("embedding_cache", "hit" if hit else "miss")
    return embeddings


def fit_examples(params: Mapping[str, Any], examples: "Examples", settings: "Settings | None" = None) -> Trained:
    """Split, build the vocabulary on the training part (or embed the texts with the sentence
    encoder for intent-minilm), train with per-epoch MLflow metrics."""
    import mlflow

    from training_code import data, engine, tracking
    from training_code.model import ModelSpec, build_model, build_optimisation
    from training_code.tokenizer import Tokenizer

    seed = int(params["seed"])
    model_cfg, opt_cfg, data_cfg = params["model"], params["optimizer"], params["data"]
    parts = data.split(examples.labels, float(data_cfg["val_fraction"]), float(data_cfg["test_fraction"]), seed)
    encoder: dict[str, str] | None = None
    if str(model_cfg["name"]) == "minilm":
        from training_code import minilm

        tokenizer = None
        encoded: Any = _embed(params, examples, settings)
        spec = ModelSpec(
            name="minilm",
            vocab_size=0,
            num_labels=len(examples.label_names),
            embed_dim=minilm.EMBED_DIM,
            hidden_dim=int(model_cfg.get("hidden_dim") or 0),
        )
        encoder = {"package": minilm.ENCODER_PACKAGE, "version": minilm.encoder_version()}
        encoder["transformers"] = minilm.transformers_version()
        tracking.log_new_params({"encoder": f"{encoder['package']}=={encoder['version']}"})
    else:
        tok_cfg = model_cfg.get("tokenizer") or {}
        tokenizer = Tokenizer.build(
            (examples.texts[i] for i in parts.train),
            ngrams=int(tok_cfg.get("ngrams", 2)),
            min_count=int(tok_cfg.get("min_count", 1)),
        )
        encoded = [tokenizer.encode(text) for text in examples.texts]
        spec = ModelSpec(
            name=str(model_cfg["name"]),
            vocab_size=len(tokenizer),
            num_labels=len(examples.label_names),
            embed_dim=int(model_cfg.get("embed_dim") or 100),
            hidden_dim=int(model_cfg.get("hidden_dim") or 64),
        )
    sizes = {"vocab_size": spec.vocab_size, "num_labels": spec.num_labels, "train_examples": len(parts.train)}
    sizes |= {"val_examples": len(parts.val), "test_examples": len(parts.test)}
    tracking.log_new_params({k: str(v) for k, v in sizes.items()})
    log.info(
        "%s: %d examples (%d train / %d val / %d test), %d labels, vocabulary %d",
        examples.name, len(examples), len(parts.train), len(parts.val), len(parts.test), spec.num_labels, spec.vocab_size,
    )

    if spec.name == "minilm":
        from training_code.minilm import build_head

        network = build_head(spec, dropout=float(model_cfg.get("dropout") or 0.0))
    else:
        network = build_model(spec)
    optimisation = build_optimisation(
        network,
        str(opt_cfg["name"]),
        float(params["lr"]),
        clip_grad_norm=float(opt_cfg.get("clip_grad_norm") or 0.0),
        momentum=float(opt_cfg.get("momentum") or 0.0),
    )

    times: list[dict[str, float]] = []

    def on_epoch(r: engine.EpochRecord) -> None:
        # Metrics stamped with the epoch's end; its start/end times (the book's run view lists
        # epochs with their times) go to a JSON artifact, not to metrics that chart timestamps.
        metrics = {"loss": r.loss, "train_accuracy": r.train_accuracy, "val_loss": r.val_loss}
        metrics["val_accuracy"] = r.val_accuracy
        mlflow.log_metrics(metrics, step=r.epoch, timestamp=int(r.end_time * 1000))
        times.append({"epoch": r.epoch, "start_time": r.start_time, "end_time": r.end_time})
        mlflow.log_dict({"epochs": times}, EPOCHS_ARTIFACT)

    started = time.time()
    fit = engine.fit(
        network,
        optimisation,
        encoded,
        examples.labels,
        parts.train,
        parts.val,
        epochs=int(params["epochs"]),
        batch_size=int(params["batch_size"]),
        patience=int(params["patience"]),
        seed=seed,
        on_epoch=on_epoch,
    )
    train_seconds = time.time() - started
    test = engine.evaluate(network, encoded, examples.labels, parts.test)
    return Trained(tokenizer, spec, network, parts, fit, test, train_seconds, encoder)
