"""The book's lab end to end through `miniautoml lab`: every step's JSON is checked."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def lab_workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("lab") / "ws"


@pytest.fixture(scope="module")
def lab_run(lab_workspace):
    out = run_cli(lab_workspace, "lab")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[13/13] done" in out.stderr  # progress is visible on stderr
    return out


@pytest.fixture(scope="module")
def lab_steps(lab_run) -> list[dict]:
    return [json.loads(line) for line in lab_run.stdout.splitlines()]  # stdout: JSON lines only


def step(steps: list[dict], name: str, nth: int = 0) -> dict:
    return [s["result"] for s in steps if s["step"] == name][nth]


def test_lab_runs_the_steps_in_the_books_order(lab_steps):
    assert [s["step"] for s in lab_steps] == [
        "create_dataset", "prepare", "train", "run_info", "golden", "serve", "predict",
        "update_dataset", "prepare", "train", "promote", "predict_champion", "done",
    ]


def test_lab_dataset_gets_two_commits_and_two_version_hashes(lab_steps):
    assert [c["commit_id"] for c in step(lab_steps, "update_dataset")["commits"]] == ["1", "2"]
    assert step(lab_steps, "prepare", 0)["version_hash"] == "hashAg=="
    assert step(lab_steps, "prepare", 1)["version_hash"] == "hashBg=="


def test_lab_trains_two_jobs_that_register_two_versions(lab_steps):
    first, second = step(lab_steps, "train", 0), step(lab_steps, "train", 1)
    assert first["status"] == second["status"] == "succeed"
    assert (first["model_version"], second["model_version"]) == ("1", "2")
    assert first["job_id"] != second["job_id"]


def test_lab_run_info_has_the_books_shape(lab_steps):
    info = step(lab_steps, "run_info")["run_info"]
    assert info["run_id"] == step(lab_steps, "train", 0)["job_id"]
    assert info["success"] is True and info["message"].startswith("test accuracy ")
    assert info["tracing"]["dataset_id"] == "1" and info["tracing"]["version_hash"] == "hashAg=="
    assert info["epochs"] and all("metrics" in e for e in info["epochs"].values())


def test_lab_predicts_by_model_id(lab_steps):
    answer = step(lab_steps, "predict")
    assert answer["model_id"] == step(lab_steps, "train", 0)["job_id"]
    assert answer["result"] == "weather"


def test_lab_champion_answers_from_the_promoted_version(lab_steps):
    promoted = step(lab_steps, "promote")
    answer = step(lab_steps, "predict_champion")
    assert str(answer["model_version"]) == promoted["version"]
    jobs = {step(lab_steps, "train", i)["model_version"]: step(lab_steps, "train", i)["job_id"] for i in (0, 1)}
    assert answer["model_id"] == jobs[promoted["version"]]


def epoch_lines(stderr: str, step_prefix: str) -> list[str]:
    """The epoch lines printed under a step (between its `[n/13]` line and the next step's)."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(step_prefix))
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith("["))
    return [line.strip() for line in lines[start + 1:end] if line.strip().startswith("epoch ")]


def test_lab_shows_each_training_epoch_on_stderr(lab_run):
    first, second = epoch_lines(lab_run.stderr, "[3/13] train"), epoch_lines(lab_run.stderr, "[10/13] retrain")
    assert first[0].startswith("epoch 1/10  loss ") and "val_accuracy" in first[0]
    assert second[0].startswith("epoch 1/20  loss ")
    assert [int(line.split()[1].split("/")[0]) for line in first] == list(range(1, len(first) + 1))


def test_lab_ends_with_a_summary_of_the_champion_and_the_service(lab_steps, lab_run):
    promoted, done = step(lab_steps, "promote"), step(lab_steps, "done")
    accuracy = promoted["test_accuracy"][promoted["version"]]
    assert done["champion"] == {"model": "lab-intent@champion", "version": promoted["version"], "test_accuracy": accuracy,
                                "gate": promoted["gate"]}
    assert lab_run.error_line == (
        f"champion lab-intent@champion = version {promoted['version']}, test_accuracy {accuracy:.3f}, "
        f"gate {promoted['gate']}; "
        f"service {step(lab_steps, 'serve')['url']} (stopped; --keep-serving leaves it running)"
    )


def test_lab_promotes_through_the_gate_with_both_models_evaluated_on_one_golden_set(lab_steps, lab_workspace):
    """The retrained version (it knows all 12 intents; the first knows 10) passes the gate on the demo's
    evaluation part, a snapshot disjoint from both training snapshots."""
    golden = step(lab_steps, "golden")["golden"]
    assert (golden["dataset_name"], golden["version_hash"], golden["rows"]) == ("lab-intents-golden", "hashAg==", 113)
    promoted = step(lab_steps, "promote")
    decision = promoted["decision"]
    assert (promoted["gate"], promoted["candidate"], promoted["version"]) == ("passed", "2", "2")
    assert (decision["candidate"]["version"], decision["baseline"]["version"]) == ("2", "1")
    assert decision["golden"]["snapshot_md5"] == golden["snapshot_md5"]
    assert decision["candidate"]["metrics"]["accuracy"] >= decision["baseline"]["metrics"]["accuracy"]
    for version, side in (("1", "baseline"), ("2", "candidate")):
        [evaluation] = run_cli(lab_workspace, "models", "show", "lab-intent", version).json["evaluations"]
        assert evaluation["run_id"] == decision[side]["evaluation_run_id"]
        assert (evaluation["snapshot_md5"], evaluation["overlap_rows"]) == (golden["snapshot_md5"], 0)


@pytest.mark.parametrize("algorithm", ["nosuch", "image-gan"])
def test_lab_rejects_an_unknown_algorithm_before_any_step(workspace, algorithm):
    out = run_cli(workspace, "lab", "--algorithm", algorithm)
    assert out.returncode == 2 and out.stdout == ""
    assert out.error_line.startswith(f"error: algorithm {algorithm!r}: unknown; expected one of intent-classification")
    assert run_cli(workspace, "dataset", "list").json == []  # no dataset created


def test_lab_rejects_a_wrong_number_of_data_files(workspace, tmp_path):
    only = tmp_path / "one.csv"
    only.write_text("hi,greet\n")
    out = run_cli(workspace, "lab", "--data", str(only))
    assert out.returncode == 2 and "give two CSV files" in out.error_line
