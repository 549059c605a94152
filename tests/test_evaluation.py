"""`models golden` and `models evaluate`: one fixed snapshot, an MLflow evaluation run per version, real models."""

from __future__ import annotations

from collections.abc import Iterator

import csv

import pytest

from conftest import job_env
from evaluation_support import EVAL, MODEL, PART1, PART2, EvalWorkspace, demo_workspace, sklearn_version

GOLDEN = ("--dataset", "golden", "--version-hash", "hashAg==")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, mlflow_template) -> Iterator[EvalWorkspace]:
    """Version 1 of `intent`, trained on part 1 only (hashAg==); the golden set is the demo's evaluation part."""
    ws = demo_workspace(tmp_path_factory.mktemp("evaluation"), mlflow_template)
    assert ws.train("hashAg==", ("-P", "epochs=10")) == "1"
    ws.ok("models", "golden", MODEL, *GOLDEN)
    yield ws
    ws.stop()


def rows(path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [(r[0].strip(), r[1].split(";")[0].strip()) for r in csv.reader(handle) if r]


def test_models_golden_records_the_snapshot_on_the_model_and_shows_it(ws: EvalWorkspace):
    shown = ws.ok("models", "golden", MODEL)["golden"]
    assert (shown["dataset_name"], shown["version_hash"], shown["rows"]) == ("golden", "hashAg==", len(rows(EVAL)))
    assert shown["snapshot_md5"].endswith(".dir")
    assert ws.client().get_registered_model(MODEL).tags["miniautoml.golden"]


def test_evaluation_accuracy_equals_an_independent_pyfunc_computation_without_the_overlap(ws: EvalWorkspace):
    """On part 1 + part 2 (hashBg==): the 540 rows version 1 trained on are left out and counted."""
    import mlflow.pyfunc
    import pandas as pd

    out = ws.ok("models", "evaluate", MODEL, "1", "--dataset", "intents", "--version-hash", "hashBg==")
    kept = [r for r in rows(PART1) + rows(PART2) if r[0] not in {t for t, _ in rows(PART1)}]
    assert (out["rows"], out["overlap_rows"]) == (len(kept), len(rows(PART1)))
    mlflow.set_tracking_uri(ws.tracking_uri())
    mlflow.set_registry_uri(ws.tracking_uri())
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/1")
    predicted = model.predict(pd.DataFrame({"text": [t for t, _ in kept]}))["result"].tolist()
    accuracy = sum(p == y for p, (_, y) in zip(predicted, kept)) / len(kept)
    assert abs(out["metrics"]["accuracy"] - accuracy) <= 1e-9
    assert set(out["metrics"]) == {"accuracy", "macro_f1", "weighted_f1", "log_loss"}


def test_a_second_evaluation_of_the_same_version_and_snapshot_returns_the_cached_run(ws: EvalWorkspace):
    first = ws.ok("models", "evaluate", MODEL, "1")
    again = ws.ok("models", "evaluate", MODEL, "1", *GOLDEN)  # the same snapshot, named explicitly
    assert again["cached"] is True and again["run_id"] == first["run_id"]
    assert again["metrics"] == first["metrics"]
    assert sum(r.data.tags.get("snapshot_md5") == first["snapshot_md5"] for r in ws.evaluation_runs()) == 1


def test_an_evaluation_run_names_the_version_and_data_links_the_model_and_holds_its_artifacts(ws: EvalWorkspace):
    out = ws.ok("models", "evaluate", MODEL, "1")
    client = ws.client()
    run = client.get_run(out["run_id"])
    version = client.get_model_version(MODEL, "1")
    tags = run.data.tags
    assert (tags["miniautoml.model_name"], tags["miniautoml.model_version"], tags["miniautoml.model_run_id"]) == (
        MODEL, "1", version.run_id)
    assert (tags["dataset_id"], tags["version_hash"], tags["snapshot_md5"]) == ("2", "hashAg==", out["snapshot_md5"])
    assert f"#/models/{MODEL}/versions/1" in tags["mlflow.note.content"]
    assert run.info.status == "FINISHED" and run.data.metrics["accuracy"] == pytest.approx(out["metrics"]["accuracy"])
    assert {a.path for a in client.list_artifacts(out["run_id"])} >= {"per_label_metrics.csv", "confusion_matrix.png"}
    [dataset] = [d.dataset for d in run.inputs.dataset_inputs]
    assert (dataset.name, dataset.digest) == ("2@hashAg==", out["snapshot_md5"])
    logged = version.model_id or version.source.removeprefix("models:/")  # the trainer registers models:/m-...
    assert [m.model_id for m in run.inputs.model_inputs] == [logged]


def test_models_show_version_lists_its_evaluations(ws: EvalWorkspace):
    out = ws.ok("models", "evaluate", MODEL, "1")
    shown = ws.ok("models", "show", MODEL, "1")
    assert out["run_id"] in [e["run_id"] for e in shown["evaluations"]]
    assert all(e["status"] == "FINISHED" for e in shown["evaluations"])


@pytest.fixture(scope="module")
def other_labels(ws: EvalWorkspace, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("other") / "colours.csv"
    path.write_text("the sky is blue,blue\ngrass is green,green\n", encoding="utf-8")
    ws.ok("dataset", "create", "colours", "--type", "TEXT_INTENT", "--file", str(path))
    return ws.ok("dataset", "prepare", "colours")["version_hash"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", MODEL, "9"], f"error: model '{MODEL}' has no version '9'"),
        (["evaluate", "nosuch", "1"], "error: model 'nosuch' not found in the registry"),
        (["evaluate", MODEL, "1", "--dataset", "colours", "--version-hash", "COLOURS"],
         "error: the evaluation set's labels (blue, green) share nothing with the model's"),
        (["evaluate", MODEL, "1", "--dataset", "intents", "--version-hash", "hashAg=="],
         "error: evaluation set 1@hashAg==: all 540 rows also occur in the training snapshot of intent version 1"),
        (["evaluate", MODEL, "1", "--dataset", "intents"], "error: --dataset and --version-hash go together"),
        (["golden", MODEL, "--dataset", "nosuch", "--version-hash", "hashAg=="], "error: dataset 'nosuch'"),
    ],
    ids=["unknown version", "unknown model", "labels share nothing", "all rows overlap", "dataset alone",
         "unknown dataset"],
)
def test_bad_evaluation_input_is_one_line_exit_2_and_logs_no_run(ws: EvalWorkspace, other_labels: str, args, message):
    args = [a.replace("COLOURS", other_labels) for a in args]
    before = len(ws.evaluation_runs())
    result = ws.cli("models", *args)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr[-2000:]
    assert result.error_line.startswith(message) and "Traceback" not in result.stderr
    assert len(ws.evaluation_runs()) == before
    assert ws.ok("models", "golden", MODEL)["golden"]["dataset_name"] == "golden"  # unchanged


def test_a_foreign_sklearn_model_is_evaluated_and_gated_like_ours(ws: EvalWorkspace):
    env = job_env(MLFLOW_TRACKING_URI=ws.tracking_uri())
    good = sklearn_version(ws, "byo-intent", 0, env)
    poor = sklearn_version(ws, "byo-intent", 40, env)
    ws.ok("models", "golden", "byo-intent", *GOLDEN)
    out = ws.ok("models", "evaluate", "byo-intent", good)
    assert out["overlap_rows"] == 0 and out["training_snapshot"] is None  # its run names no snapshot
    assert set(out["metrics"]) == {"accuracy", "macro_f1", "weighted_f1"}  # its pyfunc gives labels, no scores
    assert ws.ok("models", "promote", "byo-intent", good, "--alias", "champion")["gate"] == "passed"
    refused = ws.cli("models", "promote", "byo-intent", poor, "--alias", "champion")
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert (refused.json["gate"], refused.json["failed"]) == ("failed", ["accuracy >= holder + 0"])
    assert str(ws.client().get_model_version_by_alias("byo-intent", "champion").version) == good
