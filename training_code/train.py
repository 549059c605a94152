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
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from miniautoml.contract import tags as run_tags
from miniautoml.contract.params import (
    ENCODER_ALGORITHM,
    ParamError,
    is_set,
    load_config,
    prepare_overrides,
    require_encoder,
    validate_label_count,
    validate_params,
)
from miniautoml.contract.trainer import code_tags
from miniautoml.errors import MiniAutoMLError
from miniautoml.redact import redact_text
from training_code.fitting import fit_examples
from training_code.mlproject import undeclared_parameter

if TYPE_CHECKING:
    from miniautoml.config import Settings
    from training_code.data import Examples
    from training_code.engine import FitResult

log = logging.getLogger("training_code")

CODE_DIR = Path(__file__).resolve().parent
# What `train` imports lazily, after its parameter checks: a warm runner imports these up front
# (miniautoml.contract.trainer.WARM_IMPORTS_ATTR) so each job it forks finds them loaded.
WARM_IMPORTS = (
    "torch", "pandas", "mlflow.pyfunc", "miniautoml.adapters.git", "training_code.tracking", "training_code.pyfunc",
    "training_code.plots", "training_code.data", "training_code.engine", "training_code.model",
)  # fmt: skip


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    test_accuracy: float
    model_version: str | None  # set when the model was registered (model_name given)
    val_accuracy: float = float("nan")
    epochs_trained: int = 0


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
    handed_over = bool(os.environ.get("MLFLOW_RUN_ID"))  # MLflow's start_run consumes the variable
    with tracking.start_run(settings, str(params["experiment"]), run_name) as run:
        run_id = run.info.run_id
        # Tags are what the MLflow UI lists: lineage only. How the trainer ran goes to job.json.
        mlflow.set_tags(
            code_tags(PROJECT_ROOT) | tracking.user_tag(mlflow.get_run(run_id))
            | {run_tags.WORKSPACE_REV: git.rev(settings.workspace)}
        )  # fmt: skip
        mlflow.log_dict(tracking.job_record(settings, run, moved_from, handed_over), run_tags.JOB_ARTIFACT)
        tracking.log_new_params(tracking.flatten(params))
        try:
            examples = _load_examples(params, settings)
        except MiniAutoMLError as exc:
            mlflow.set_tag(run_tags.MESSAGE, f"error: {redact_text(str(exc))}")
            raise
        tags = tracking.dataset_tags(settings, examples)
        mlflow.set_tags(tags | {"mlflow.note.content": tracking.describe(params, tags)})
        tracking.log_dataset(examples)

        t = fit_examples(params, examples, settings)
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
            run_tags.MESSAGE: f"test accuracy {t.test.accuracy:.3f}",
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
    tags = {
        run_tags.VERSION_RUN_ID: run_id, run_tags.SNAPSHOT_MD5: examples.digest,
        run_tags.VERSION_ALGORITHM: str(params["algorithm"]),
    }  # fmt: skip
    if examples.dataset_id is not None:
        tags |= {run_tags.DATASET_ID: examples.dataset_id, run_tags.VERSION_HASH: str(examples.version_hash)}
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
    message = redact_text(" ".join(str(exc).split()))  # exactly one line, no password of a URI
    if os.environ.get("MLFLOW_RUN_ID"):
        try:
            from miniautoml.config import load_settings
            from training_code import tracking

            tracking.tag_handed_over_run(load_settings(), run_tags.MESSAGE, f"error: {message}")
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
    undeclared = undeclared_parameter(args)
    if undeclared:
        _fail(ParamError(undeclared))
    if not any(a in ("-m", "--multirun") or a.startswith(("--cfg", "-c", "--help", "-h")) for a in args):
        # Compose once up front so an unknown key or option is one line, not Hydra's report.
        try:
            load_config([a for a in args if not a.startswith("-")])
        except Exception as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            sys.exit(2)
    sys.argv = [sys.argv[0], *args]
    _hydra_main()


def _name_process() -> None:
    """`miniautoml trainer <job id>` in ps (the job's run id), so an operator finds the right one
    to kill; a warm trainer would show as its runner. The environment stays readable (SPT_NOENV)."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    os.environ.setdefault("SPT_NOENV", "1")
    try:
        from setproctitle import setproctitle
    except ImportError:  # a Ray node's environment without it: the trainer runs unnamed
        return
    setproctitle(f"miniautoml trainer {run_id}")


if __name__ == "__main__":
    _name_process()
    main()
