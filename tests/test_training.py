"""Training: the shared tokenizer, params, a small real training run logged to MLflow, `mlflow run`."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities import Run

from miniautoml.adapters.mlflow import ensure_experiment
from miniautoml.config import Settings, load_settings
from miniautoml.contract import tags as run_tags
from miniautoml.contract.params import ParamError, validate_params
from training_code import data, engine
from training_code.model import ModelSpec, build_model, build_optimisation
from training_code.pyfunc import IntentClassifierModel
from training_code.tokenizer import Tokenizer
from training_code.train import TrainResult, load_config, prepare_overrides, train

REPO = Path(__file__).resolve().parents[1]
CLINC = REPO / "data" / "clinc150"
PY = sys.executable
# Variables that would point a child process (or this one) at another workspace's MLflow run.
MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")
TEXTS = ["how do you say thank you in french", "what is my bank balance", "is it going to rain today"]


def child_env(workspace: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MLFLOW_ENV and k != "PYTHONPATH"}
    env["MINIAUTOML_WORKSPACE"] = str(workspace)
    env["PATH"] = f"{Path(PY).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` of MLproject
    env.update(extra)
    return env


def clinc_slice(dest: Path, rows: int = 1500) -> Path:
    """The first rows of CLINC150 part 1: ~17 intents, enough to learn something in 2 epochs."""
    with (CLINC / "demo-part1.csv").open(encoding="utf-8", newline="") as fh:
        head = [row for _, row in zip(range(rows), csv.reader(fh))]
    with dest.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(head)
    return dest


def write_lines(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- tokenizer -----------------------------------------------------------------------------------


def test_tokenizer_lowercases_words_and_adds_bigrams():
    tok = Tokenizer(vocab=[])
    assert tok.tokens("Book a Flight!") == ["book", "a", "flight", "book a", "a flight"]


def test_tokenizer_drops_unknown_tokens_instead_of_mapping_them():
    tok = Tokenizer.build(["book a flight"])
    assert tok.encode("book a hotel") == [tok.vocab.index("book"), tok.vocab.index("a"), tok.vocab.index("book a")]
    assert tok.encode("zzz qqq") == []


def test_tokenizer_keeps_only_tokens_seen_min_count_times():
    tok = Tokenizer.build(["pay bill", "pay rent"], min_count=2)
    assert tok.vocab == ["pay"]


def test_tokenizer_vocabulary_is_deterministic():
    texts = ["pay my bill", "what's the weather", "pay rent now", "weather today"]
    first, second = Tokenizer.build(texts), Tokenizer.build(list(texts))
    assert first.vocab == second.vocab
    assert first.vocab[0] == "pay"  # most frequent first, ties by token
    assert [first.encode(t) for t in texts] == [second.encode(t) for t in texts]


def test_tokenizer_round_trips_through_json(tmp_path):
    tok = Tokenizer.build(["Ça va? très bien", "what's up"], ngrams=2, min_count=1)
    tok.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.load(tmp_path / "tokenizer.json")
    assert loaded == tok
    assert loaded.encode("what's up, ça va") == tok.encode("what's up, ça va")


def test_tokenizer_batch_encoding_matches_embedding_bag_layout():
    tok = Tokenizer.build(["a b", "c"], ngrams=1)
    ids, offsets = tok.encode_batch(["a b", "zzz", "c"])
    assert ids == tok.encode("a b") + tok.encode("c")
    assert offsets == [0, 2, 2]


# --- data ----------------------------------------------------------------------------------------


def test_csv_rows_take_the_first_of_several_labels(tmp_path):
    path = write_lines(tmp_path / "x.csv", 'hi there,greet;polite\n"well, bye",bye\n\n')
    assert data.read_rows(path) == [("hi there", "greet"), ("well, bye", "bye")]


def test_csv_files_load_with_sorted_label_names(tmp_path):
    a = write_lines(tmp_path / "a.csv", "hi,greet\nbye,bye\n")
    b = write_lines(tmp_path / "b.csv", "thanks,thank\n")
    examples = data.load_csv(f"{a}{os.pathsep}{b}")
    assert examples.label_names == ["bye", "greet", "thank"]
    assert examples.labels == [1, 0, 2]
    assert len(examples.digest) == 32


def test_split_is_deterministic_disjoint_and_stratified():
    labels = [i % 5 for i in range(500)]
    first, second = data.split(labels, 0.1, 0.1, seed=7), data.split(labels, 0.1, 0.1, seed=7)
    assert first == second
    assert sorted(first.train + first.val + first.test) == list(range(500))
    assert [sum(labels[i] == k for i in first.test) for k in range(5)] == [10] * 5
    assert data.split(labels, 0.1, 0.1, seed=8) != first


def test_training_is_deterministic_for_a_seed():
    texts = ["book a flight", "book a hotel", "pay my bill", "pay the rent", "flight to rome", "hotel in paris"]
    labels = [0, 1, 2, 2, 0, 1]
    tok = Tokenizer.build(texts)
    encoded = [tok.encode(t) for t in texts]

    def weights(name: str, opt: str, lr: float) -> list[torch.Tensor]:
        torch.manual_seed(3)
        model = build_model(ModelSpec(name=name, vocab_size=len(tok), num_labels=3))
        optimisation = build_optimisation(model, opt, lr, clip_grad_norm=0.1 if opt == "sgd" else 0.0)
        engine.fit(model, optimisation, encoded, labels, [0, 1, 2, 3], [4, 5], epochs=3, batch_size=2, patience=0, seed=3)
        return list(model.state_dict().values())

    for name, opt, lr in (("fasttext", "adam", 0.01), ("book", "sgd", 5.0)):
        assert all(torch.equal(a, b) for a, b in zip(weights(name, opt, lr), weights(name, opt, lr)))


# --- params --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lr=-1"], "lr=-1: must be > 0"),
        (["lr=0"], "lr=0: must be > 0"),
        (["epochs=0"], "epochs=0: must be a positive integer"),
        (["algorithm=regression"], "algorithm='regression': unknown"),
        (["data.path="], "no dataset"),
        (["data.path=", "dataset_id=1"], "dataset_id and version_hash go together"),
    ],
)
def test_invalid_params_are_rejected_with_their_name(overrides, message):
    cfg = load_config(["data.path=x.csv", *overrides])
    with pytest.raises(ParamError, match=message.replace("(", r"\(")):
        validate_params(cfg)


def test_default_params_with_a_dataset_are_valid():
    validate_params(load_config(["dataset_id=1", "version_hash=hashAg=="]))


def test_model_book_switches_to_the_books_clipped_sgd():
    cfg = load_config(["model=book", "data.path=x.csv"])
    assert (cfg.model.name, cfg.optimizer.name, cfg.lr, cfg.optimizer.clip_grad_norm) == ("book", "sgd", 5.0, 0.1)


def test_mlproject_arguments_compose_with_empty_values_unset():
    args = ["dataset_id=1", "version_hash=hashAg==", "model_name=", "data.path=", "seed=", "batch_size=8",
            "--overrides=epochs=3 lr=0.5"]
    cfg = load_config(prepare_overrides(args))
    assert (cfg.dataset_id, cfg.version_hash, cfg.model_name, cfg.data.path) == ("1", "hashAg==", "", "")
    assert (cfg.epochs, cfg.lr, cfg.seed, cfg.batch_size) == (3, 0.5, 42, 8)  # seed= is unset: the default


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lr=-1", "data.path=x.csv"], "error: lr=-1: must be > 0"),
        (["epochs=0", "data.path=x.csv"], "error: epochs=0: must be a positive integer"),
        (["algorithm=regression", "data.path=x.csv"], "error: algorithm='regression': unknown"),
        ([], "error: no dataset"),
        (["data.path=/nonexistent/x.csv"], "error: data.path: /nonexistent/x.csv: no such file"),
        (["lrr=1", "data.path=x.csv"], "error: Could not override 'lrr'"),
        # `mlflow run -P epoch=3` (no such MLproject parameter) appends `--epoch 3`.
        (["data.path=x.csv", "--epoch", "3"], "error: unknown MLproject parameter -P epoch=3: did you mean epochs?"),
    ],
)
def test_cli_reports_a_bad_param_in_one_line_and_fails(tmp_path, args, message):
    proc = subprocess.run(
        [PY, "-m", "training_code.train", *args], capture_output=True, text=True, cwd=tmp_path, env=child_env(tmp_path)
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created: no run, no Hydra output


def test_dataset_with_a_single_label_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIAUTOML_WORKSPACE", str(tmp_path))
    for name in MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    one_label = write_lines(tmp_path / "one.csv", "hi,greet\nhello,greet\nhey,greet\n")
    try:
        with pytest.raises(ParamError, match="1 label"):
            train(load_config([f"data.path={one_label}"]))
    finally:
        mlflow.set_tracking_uri(None)  # also unsets the MLFLOW_TRACKING_URI it exported


# --- the pyfunc, on a tiny model without MLflow -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> IntentClassifierModel:
    texts = ["book a flight", "flight to rome", "pay my bill", "pay the rent", "weather today", "is it raining"]
    labels = [0, 0, 1, 1, 2, 2]
    tok = Tokenizer.build(texts)
    torch.manual_seed(0)
    spec = ModelSpec(name="fasttext", vocab_size=len(tok), num_labels=3)
    model = build_model(spec)
    encoded = [tok.encode(t) for t in texts]
    opt = build_optimisation(model, "adam", 0.1)
    engine.fit(model, opt, encoded, labels, list(range(6)), [], epochs=20, batch_size=2, patience=0, seed=0)
    d = tmp_path_factory.mktemp("tiny")
    IntentClassifierModel.save_files(d, model, tok, ["flight", "bill", "weather"], spec)
    return IntentClassifierModel.from_dir(d)


def test_predict_texts_returns_label_and_top_k_scores_best_first(tiny_model):
    [out] = tiny_model.predict_texts(["pay the bill"], top_k=2)
    assert out["result"] == "bill"
    assert list(out["scores"])[0] == "bill" and len(out["scores"]) == 2
    probs = list(out["scores"].values())
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6


def test_predict_texts_still_answers_texts_without_known_words(tiny_model):
    results = tiny_model.predict_texts(["", "zzz qqq"])
    assert [r["result"] in {"flight", "bill", "weather"} for r in results] == [True, True]


def test_pyfunc_predict_takes_a_text_column_or_a_list(tiny_model):
    frame = tiny_model.predict(None, pd.DataFrame({"text": ["book a flight", "pay my bill"]}), params={"top_k": 1})
    assert list(frame.columns) == ["result", "scores"]
    assert frame["result"].tolist() == ["flight", "bill"]
    assert all(len(s) == 1 for s in frame["scores"])
    assert tiny_model.predict(None, ["book a flight"])["result"].tolist() == ["flight"]


# --- a real training run into a temporary workspace (dataset service + MLflow) ----------------------


@dataclass
class Trained:
    result: TrainResult
    run: Run
    client: MlflowClient
    settings: Settings
    dataset_id: str
    version_hash: str
    dvc_md5: str
    metrics_dir: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """Dataset 1 (a 1,500-row CLINC slice) -> snapshot -> 2 epochs -> registered model "intent"."""
    from miniautoml.datasets import create_dataset, fetch_snapshot, prepare_snapshot

    root = tmp_path_factory.mktemp("trained")
    ws = root / "ws"
    ws.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIAUTOML_WORKSPACE", str(ws))
        for name in MLFLOW_ENV:
            mp.delenv(name, raising=False)
        try:
            settings = load_settings()
            summary = create_dataset(settings, "intents", "TEXT_INTENT", clinc_slice(root / "slice.csv"))
            version = prepare_snapshot(settings, summary.dataset_id)
            snap = fetch_snapshot(settings, summary.dataset_id, version.version_hash)
            cfg = load_config(
                [
                    f"dataset_id={summary.dataset_id}",
                    f"version_hash={version.version_hash}",
                    "model_name=intent",
                    "epochs=2",
                    f"metrics_path={root / 'metrics' / 'train.json'}",
                ]
            )
            result = train(cfg, settings)
        finally:
            mlflow.set_tracking_uri(None)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    return Trained(
        result=result,
        run=client.get_run(result.run_id),
        client=client,
        settings=settings,
        dataset_id=summary.dataset_id,
        version_hash=version.version_hash,
        dvc_md5=snap.dvc_md5,
        metrics_dir=root / "metrics",
    )


@pytest.mark.slow
def test_run_logs_all_params_flattened(trained):
    params = trained.run.data.params
    assert params["dataset_id"] == trained.dataset_id and params["version_hash"] == trained.version_hash
    assert (params["algorithm"], params["epochs"], params["lr"]) == ("intent-classification", "2", "0.01")
    assert (params["model.name"], params["optimizer.name"], params["model.tokenizer.ngrams"]) == ("fasttext", "adam", "2")
    assert int(params["vocab_size"]) > 0 and int(params["train_examples"]) > 1000


def artifact_json(trained: "Trained", path: str, dest: Path):
    return json.loads(Path(trained.client.download_artifacts(trained.result.run_id, path, str(dest))).read_text())


@pytest.mark.slow
def test_run_logs_each_epochs_metrics_by_epoch_and_their_times_as_an_artifact(trained, tmp_path):
    for key in ("loss", "train_accuracy", "val_loss", "val_accuracy"):
        history = trained.client.get_metric_history(trained.result.run_id, key)
        assert [m.step for m in history] == [1, 2], key
    # Times are no metrics (MLflow would chart unix timestamps): epochs.json has them.
    assert not {"epoch_start_time", "epoch_end_time"} & set(trained.run.data.metrics)
    epochs = artifact_json(trained, "epochs.json", tmp_path)["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[0]["start_time"] <= epochs[0]["end_time"] <= epochs[1]["start_time"] <= epochs[1]["end_time"]
    assert epochs[0]["start_time"] > 1.7e9  # unix seconds
    # Each epoch's metrics are stamped with the epoch's end.
    loss = trained.client.get_metric_history(trained.result.run_id, "loss")
    assert [m.timestamp for m in loss] == [int(e["end_time"] * 1000) for e in epochs]


@pytest.mark.slow
def test_run_reports_test_accuracy_as_metric_and_message(trained):
    metrics, tags = trained.run.data.metrics, trained.run.data.tags
    assert metrics["test_accuracy"] == pytest.approx(trained.result.test_accuracy)
    assert trained.result.test_accuracy > 0.5  # 17 intents, 2 epochs: far above chance
    assert "test_loss" in metrics
    assert tags["miniautoml.message"] == f"test accuracy {trained.result.test_accuracy:.3f}"
    assert trained.run.info.status == "FINISHED"


# The tags the MLflow UI lists (it hides `mlflow.*`): lineage, plainly, and the one-line result.
VISIBLE_TAGS = {"dataset_name", "dataset_id", "dataset_commits", "version_hash", "snapshot_md5", "code_dirty",
                "workspace_rev", "miniautoml.message"}


@pytest.mark.slow
def test_run_is_tagged_with_dataset_snapshot_and_revisions(trained):
    tags = trained.run.data.tags
    assert {k for k in tags if not k.startswith("mlflow.")} == VISIBLE_TAGS  # no duplicates, no internals
    assert (tags["dataset_name"], tags["dataset_id"], tags["dataset_commits"]) == ("intents", trained.dataset_id, "1")
    assert tags["version_hash"] == trained.version_hash
    assert tags["snapshot_md5"] == trained.dvc_md5
    assert re.fullmatch(r"[0-9a-f]{40}", tags["mlflow.source.git.commit"])  # the training code's commit
    assert tags["code_dirty"] in ("true", "false")
    assert len(tags["workspace_rev"]) == 40  # the dataset service commits to the workspace's git
    assert tags["mlflow.user"]


@pytest.mark.slow
def test_run_description_says_what_was_trained_on_what(trained):
    note = trained.run.data.tags["mlflow.note.content"]
    assert note.startswith("Intent classifier `fasttext` (adam, lr 0.01, batch 32, up to 2 epochs, seed 42)")
    assert f"dataset **intents** (id {trained.dataset_id}), commit 1, version hash `{trained.version_hash}`" in note
    assert f"Test accuracy **{trained.result.test_accuracy:.3f}**" in note
    assert "registered as model `intent` version 1" in note


@pytest.mark.slow
def test_how_the_trainer_ran_is_an_artifact_not_tags(trained, tmp_path):
    job = artifact_json(trained, "job.json", tmp_path)
    assert job["run_id"] == trained.result.run_id and job["launched_by"] == "python"
    assert job["pid"] == os.getpid() and job["host"] and job["cwd"] == os.getcwd()
    assert job["workspace"] == str(trained.settings.workspace)
    assert job["tracking_uri"] == trained.settings.tracking_uri and job["moved_from"] is None


@pytest.mark.slow
def test_run_has_learning_curve_and_confusion_matrix_pngs(trained):
    names = {a.path for a in trained.client.list_artifacts(trained.result.run_id)}
    assert {"learning_curve.png", "confusion_matrix.png"} <= names


@pytest.mark.slow
def test_run_logs_the_snapshot_as_its_training_dataset(trained):
    [inp] = trained.run.inputs.dataset_inputs
    assert inp.dataset.name == f"{trained.dataset_id}@{trained.version_hash}"
    assert inp.dataset.digest == trained.dvc_md5
    assert trained.dvc_md5[2:].removesuffix(".dir") in inp.dataset.source
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "training"


@pytest.mark.slow
def test_registered_version_is_tagged_with_run_and_dataset(trained):
    assert trained.result.model_version == "1"
    version = trained.client.get_model_version("intent", "1")
    assert version.run_id == trained.result.run_id
    assert version.tags["run_id"] == trained.result.run_id
    assert (version.tags["dataset_id"], version.tags["version_hash"]) == (trained.dataset_id, trained.version_hash)
    assert version.tags["algorithm"] == "intent-classification"  # `models show` reads it


@pytest.mark.slow
def test_run_records_every_metric_tag_and_artifact_the_contract_names(trained):
    """The platform reads runs by these names (jobs, runs, registry, sweeps): the trainer writes each."""
    metrics = trained.run.data.metrics
    assert {*run_tags.SUMMARY_METRICS, *run_tags.RUN_LEVEL_METRICS, *run_tags.EPOCH_METRICS} <= set(metrics)
    assert {run_tags.EPOCHS_ARTIFACT, run_tags.JOB_ARTIFACT} <= {
        a.path for a in trained.client.list_artifacts(trained.result.run_id)
    }
    lineage = {run_tags.DATASET_ID, run_tags.VERSION_HASH, run_tags.SNAPSHOT_MD5}
    assert lineage | {run_tags.MESSAGE, run_tags.DATASET_NAME, run_tags.DATASET_COMMITS, run_tags.GIT_COMMIT,
                      run_tags.CODE_DIRTY, run_tags.WORKSPACE_REV} <= set(trained.run.data.tags)  # fmt: skip
    version = trained.client.get_model_version("intent", "1")
    assert lineage | {run_tags.VERSION_RUN_ID, run_tags.VERSION_ALGORITHM} <= set(version.tags)


@pytest.mark.slow
def test_metrics_path_gets_dvc_metrics_and_epoch_plots(trained):
    metrics = json.loads((trained.metrics_dir / "train.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(trained.result.test_accuracy)
    assert "val_accuracy" in metrics
    rows = list(csv.DictReader((trained.metrics_dir / "train_epochs.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]  # dvc.yaml's plots


LOAD_IN_FRESH_PROCESS = """
import json, sys, mlflow
model = mlflow.pyfunc.load_model("models:/intent/1")
out = model.predict(json.loads(sys.argv[1]))
print(json.dumps({"labels": out["result"].tolist(), "code": sys.modules["training_code"].__file__}))
"""


@pytest.mark.slow
def test_registered_model_loads_in_a_fresh_process_from_its_own_code(trained, tmp_path):
    proc = subprocess.run(
        [PY, "-c", LOAD_IN_FRESH_PROCESS, json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=child_env(trained.settings.workspace, MLFLOW_TRACKING_URI=trained.settings.tracking_uri),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not fresh["code"].startswith(str(REPO))  # imported from the model's code_paths copy
    mlflow.set_tracking_uri(trained.settings.tracking_uri)
    try:
        python_model = mlflow.pyfunc.load_model("models:/intent/1").unwrap_python_model()
    finally:
        mlflow.set_tracking_uri(None)
    assert fresh["labels"] == [r["result"] for r in python_model.predict_texts(TEXTS)]


@pytest.mark.slow
def test_cli_trains_a_snapshot_and_leaves_cwd_untouched(trained, tmp_path):
    """The version hash ends in '=' (Hydra's override grammar rejects it unquoted)."""
    proc = subprocess.run(
        [PY, "-m", "training_code.train", f"dataset_id={trained.dataset_id}", f"version_hash={trained.version_hash}", "epochs=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=child_env(trained.settings.workspace),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("run ") and "test accuracy" in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_mlflow_run_trains_from_a_data_path(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    slice_csv = clinc_slice(tmp_path / "slice.csv", rows=600)
    settings = load_settings(ws)
    try:
        ensure_experiment(settings)  # as the jobs service does: artifacts under the workspace
    finally:
        mlflow.set_tracking_uri(None)
    cmd = [PY, "-m", "mlflow", "run", str(REPO), "-e", "train", "--env-manager", "local", "--experiment-name", "miniautoml"]
    # epochs and batch_size are MLproject parameters: MLflow records them as given, so they are not overrides
    cmd += ["-P", f"data_path={slice_csv}", "-P", "epochs=1", "-P", "batch_size=16"]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=child_env(ws, MLFLOW_TRACKING_URI=settings.tracking_uri),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name("miniautoml").experiment_id])
    assert run.info.status == "FINISHED"
    assert (run.data.params["epochs"], run.data.params["batch_size"]) == ("1", "16")
    assert "test_accuracy" in run.data.metrics
    assert run.data.tags["data_path"] == slice_csv.resolve().as_uri()
    assert run.info.artifact_uri.startswith(settings.artifact_root)
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()
