"""Train an intent classifier and log it to MLflow: `python -m training_code.train key=value ...`.

Parameters come from Hydra configs in `params/` (see params/config.yaml). From Python:
`train(load_config(["data.path=examples.csv", "epochs=2"]))`.
Heavy imports (torch, mlflow) happen inside `train`, after the parameters were checked, so a bad
parameter is reported in about a second.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from miniautoml.errors import MiniAutoMLError
from training_code.validation import (
    ENCODER_ALGORITHM,
    is_set,
    require_encoder,
    validate_label_count,
    validate_params,
)

if TYPE_CHECKING:
    import torch

    from miniautoml.config import Settings
    from training_code.data import Examples, Split
    from training_code.engine import Evaluation, FitResult
    from training_code.model import ModelSpec
    from training_code.tokenizer import Tokenizer

log = logging.getLogger("training_code")

PARAMS_DIR = Path(__file__).resolve().parent.parent / "params"
CODE_DIR = Path(__file__).resolve().parent
# String parameters whose values may hold characters Hydra's override grammar rejects
# (base64 version hashes end in "=="); they are quoted for Hydra before parsing.
STRING_KEYS = frozenset(
    {"dataset_id", "version_hash", "model_name", "experiment", "run_name", "data.path", "metrics_path", "plots_path"}
)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    test_accuracy: float
    model_version: str | None  # set when the model was registered (model_name given)
    val_accuracy: float = float("nan")
    epochs_trained: int = 0


def load_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The composed config of `params/` with Hydra overrides, for calling `train` from Python."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PARAMS_DIR), version_base="1.3"):
        return compose("config", overrides=prepare_overrides(overrides))


def prepare_overrides(args: Sequence[str]) -> list[str]:
    """Command-line overrides as Hydra expects them.

    Empty arguments are dropped and `--overrides="a=1 b=2"` is split: MLproject parameters are
    always passed, possibly empty, and `overrides` carries several. String values are quoted so
    `version_hash=hashAg==` parses and `dataset_id=1` stays a string.
    """
    out: list[str] = []
    for arg in args:
        if arg.startswith("--overrides="):
            out.extend(prepare_overrides(shlex.split(arg.removeprefix("--overrides="))))
            continue
        if not arg.strip():
            continue
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in STRING_KEYS and value and value[0] not in "'\"[" and value != "null":
            quote = "'" if "'" not in value else '"'
            value = quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote
            arg = f"{key}={value}"
        out.append(arg)
    return out


def _as_dict(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def _load_examples(cfg: Mapping[str, Any], settings: "Settings") -> "Examples":
    from training_code import data

    if is_set(cfg.get("dataset_id")):
        examples = data.load_snapshot(settings, str(cfg["dataset_id"]), str(cfg["version_hash"]))
    else:
        examples = data.load_csv(cfg["data"]["path"])
    examples = data.sample(examples, int(cfg["data"].get("limit") or 0), int(cfg["seed"]))
    validate_label_count(examples.labels_present(), examples.name)
    return examples


def _write_dvc_outputs(cfg: Mapping[str, Any], metrics: Mapping[str, float], fit: "FitResult") -> None:
    """Metrics JSON + per-epoch CSV for `dvc metrics show` / `dvc plots show` (paths from cwd)."""
    metrics_path = Path(str(cfg["metrics_path"]))
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(dict(metrics), indent=2) + "\n", encoding="utf-8")
    plots = cfg.get("plots_path")
    plots_path = Path(str(plots)) if is_set(plots) else metrics_path.with_name(f"{metrics_path.stem}_epochs.csv")
    plots_path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,train_loss,train_accuracy,val_loss,val_accuracy"]  # dvc.yaml's plots
    lines += [f"{r.epoch},{r.loss:.6f},{r.train_accuracy:.6f},{r.val_loss:.6f},{r.val_accuracy:.6f}" for r in fit.history]
    plots_path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class _Trained:
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


def _fit(params: Mapping[str, Any], examples: "Examples", settings: "Settings | None" = None) -> _Trained:
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
        mlflow.log_dict({"epochs": times}, tracking.EPOCHS_ARTIFACT)

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
    return _Trained(tokenizer, spec, network, parts, fit, test, train_seconds, encoder)


def train(cfg: DictConfig | Mapping[str, Any], settings: "Settings | None" = None) -> TrainResult:
    """Train, evaluate and log one model; raises MiniAutoMLError (ParamError) on bad input."""
    params = _as_dict(cfg)
    validate_params(params)
    if params.get("algorithm") == ENCODER_ALGORITHM:
        require_encoder()  # one line naming the extra, before a run is created
    if not is_set(params.get("dataset_id")):
        from training_code.data import csv_paths

        csv_paths(params["data"]["path"])  # a missing file fails before a run is created

    import mlflow
    import torch

    from miniautoml.adapters import git
    from miniautoml.config import PROJECT_ROOT
    from training_code import plots, tracking
    from training_code.pyfunc import IntentClassifierModel

    settings = settings or tracking.workspace_settings()
    torch.set_num_threads(max(1, int(params.get("threads") or 1)))
    torch.manual_seed(int(params["seed"]))
    run_name = str(params.get("run_name") or "") or None
    moved_from = tracking.rehome_handed_over_run(settings, str(params["experiment"]))
    with tracking.start_run(settings, str(params["experiment"]), run_name) as run:
        run_id = run.info.run_id
        # Tags are what the MLflow UI lists: lineage only. How the trainer ran goes to job.json.
        mlflow.set_tags(
            tracking.code_tags(PROJECT_ROOT) | tracking.user_tag(mlflow.get_run(run_id))
            | {"workspace_rev": git.rev(settings.workspace)}
        )  # fmt: skip
        mlflow.log_dict(tracking.job_record(settings, run, moved_from), tracking.JOB_ARTIFACT)
        tracking.log_new_params(tracking.flatten(params))
        try:
            examples = _load_examples(params, settings)
        except MiniAutoMLError as exc:
            mlflow.set_tag(tracking.MESSAGE_TAG, f"error: {exc}")
            raise
        tags = tracking.dataset_tags(settings, examples)
        mlflow.set_tags(tags | {"mlflow.note.content": tracking.describe(params, tags)})
        tracking.log_dataset(examples)

        t = _fit(params, examples, settings)
        summary = {"test_accuracy": t.test.accuracy, "test_loss": t.test.loss, "val_accuracy": t.fit.best_val_accuracy}
        summary |= {"best_epoch": t.fit.best_epoch, "epochs_trained": len(t.fit.history)}
        mlflow.log_metrics(
            {k: v for k, v in summary.items() if k != "val_accuracy"}  # val_accuracy is per epoch
            | {"best_val_accuracy": t.fit.best_val_accuracy, "train_seconds": t.train_seconds}
        )
        log.info("test_accuracy %.4f (best epoch %d, %.1fs training)", t.test.accuracy, t.fit.best_epoch, t.train_seconds)

        with tempfile.TemporaryDirectory(prefix="miniautoml-train-") as tmp_dir:
            tmp = Path(tmp_dir)
            plots.learning_curve(t.fit.history, tmp / "learning_curve.png", t.fit.best_epoch)
            truth = [examples.labels[i] for i in t.parts.test]
            plots.confusion_matrix(truth, t.test.predictions, examples.label_names, tmp / "confusion_matrix.png")
            mlflow.log_artifact(str(tmp / "learning_curve.png"))
            mlflow.log_artifact(str(tmp / "confusion_matrix.png"))
            if t.tokenizer is None:
                from training_code.minilm import MiniLMIntentModel

                python_model: IntentClassifierModel = MiniLMIntentModel()
                artifacts = MiniLMIntentModel.save_files(
                    tmp / "model", t.network, examples.label_names, t.spec, t.encoder or {}
                )
            else:
                python_model = IntentClassifierModel()
                artifacts = IntentClassifierModel.save_files(
                    tmp / "model", t.network, t.tokenizer, examples.label_names, t.spec
                )
            example_texts = [examples.texts[i] for i in t.parts.test[:2]]
            model_version = _log_model(
                settings, params, artifacts, examples, example_texts, run_id, python_model, t.encoder
            )
        if is_set(params.get("metrics_path")):
            _write_dvc_outputs(params, summary, t.fit)
        result = (
            f"Test accuracy **{t.test.accuracy:.3f}** (best val accuracy {t.fit.best_val_accuracy:.3f} "
            f"at epoch {t.fit.best_epoch} of {len(t.fit.history)})"
            + (f"; registered as model `{params['model_name']}` version {model_version}." if model_version else ".")
        )
        mlflow.set_tags({
            tracking.MESSAGE_TAG: f"test accuracy {t.test.accuracy:.3f}",
            "mlflow.note.content": tracking.describe(params, tags, result),
        })  # fmt: skip
    return TrainResult(
        run_id=run_id,
        test_accuracy=t.test.accuracy,
        model_version=model_version,
        val_accuracy=t.fit.best_val_accuracy,
        epochs_trained=len(t.fit.history),
    )


def _log_model(
    settings: "Settings",
    params: Mapping[str, Any],
    artifacts: dict[str, str],
    examples: "Examples",
    example_texts: list[str],
    run_id: str,
    python_model: Any = None,
    encoder: Mapping[str, str] | None = None,
) -> str | None:
    """Log the pyfunc (with this package as code) and register it when `model_name` is set."""
    import mlflow
    import numpy
    import pandas as pd
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, DataType, Map, ParamSchema, ParamSpec, Schema

    from training_code import tracking
    from training_code.pyfunc import DEFAULT_TOP_K, IntentClassifierModel

    signature = ModelSignature(
        # One unnamed string column: accepts a list of texts as well as a DataFrame `text` column.
        inputs=Schema([ColSpec(DataType.string)]),
        outputs=Schema([ColSpec(DataType.string, "result"), ColSpec(Map(DataType.double), "scores")]),
        params=ParamSchema([ParamSpec("top_k", DataType.long, DEFAULT_TOP_K)]),
    )
    model_name = str(params.get("model_name") or "").strip() or None
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=python_model if python_model is not None else IntentClassifierModel(),
        artifacts=artifacts,
        code_paths=[str(CODE_DIR)],
        signature=signature,
        input_example=pd.DataFrame({"text": example_texts or ["hello"]}),
        registered_model_name=model_name,
        # Explicit requirements: inferring them re-loads the model in a subprocess (seconds).
        pip_requirements=[
            f"mlflow=={mlflow.__version__}",
            f"torch=={torch.__version__.split('+')[0]}",
            f"pandas=={pd.__version__}",
            f"numpy=={numpy.__version__}",
        ]
        # intent-minilm: the encoder is the installed package (not copied into the artifacts).
        + ([f"{encoder['package']}=={encoder['version']}", f"transformers=={encoder['transformers']}"] if encoder else []),
    )
    if model_name is None:
        return None
    version = str(info.registered_model_version)
    tags = {"run_id": run_id, "snapshot_md5": examples.digest, "algorithm": str(params["algorithm"])}
    if examples.dataset_id is not None:
        tags |= {"dataset_id": examples.dataset_id, "version_hash": str(examples.version_hash)}
    tracking.tag_model_version(settings, model_name, version, tags)
    return version  # the run page lists it under "Registered models": no tag needed


def _configure_logging() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # bars flood job logs
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("alembic", "urllib3", "botocore", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Logged on every model; the pickled object is our own class, loaded from the model's code.
    logging.getLogger("mlflow.pyfunc").addFilter(lambda record: "CloudPickle" not in record.getMessage())


def _fail(exc: MiniAutoMLError) -> None:
    message = " ".join(str(exc).split())  # exactly one line
    if os.environ.get("MLFLOW_RUN_ID"):
        try:
            from miniautoml.config import load_settings
            from training_code import tracking

            tracking.tag_handed_over_run(load_settings(), tracking.MESSAGE_TAG, f"error: {message}")
        except MiniAutoMLError:
            pass  # the error line below matters more than the tag
    print(f"error: {message}", file=sys.stderr)
    sys.exit(exc.exit_code)


@hydra.main(config_path="../params", config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    _configure_logging()
    try:
        result = train(cfg)
    except MiniAutoMLError as exc:
        _fail(exc)
        return
    version = f", model version {result.model_version}" if result.model_version else ""
    print(f"run {result.run_id}: test accuracy {result.test_accuracy:.4f}{version}")


def _one_line(exc: Exception) -> str:
    """Hydra's composition errors without the search path and internals it appends."""
    kept = []
    for line in str(exc).splitlines():
        line = line.strip()
        if line.startswith(("Config search path", "Key '", "full_key:", "object_type=")):
            break
        if line:
            kept.append(line)
    return " ".join(kept) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> None:
    args = prepare_overrides(sys.argv[1:] if argv is None else argv)
    if not any(a in ("-m", "--multirun") or a.startswith(("--cfg", "-c", "--help", "-h")) for a in args):
        # Compose once up front so an unknown key or option is one line, not Hydra's report.
        try:
            load_config([a for a in args if not a.startswith("-")])
        except Exception as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            sys.exit(2)
    sys.argv = [sys.argv[0], *args]
    _hydra_main()


if __name__ == "__main__":
    main()
