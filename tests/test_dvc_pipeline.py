"""`dvc repro` runs dvc.yaml: prepare the snapshot, train it through the job service.

The workspace is a checkout as the pipeline expects one: dvc.yaml, params.yaml, MLproject, params/
and training_code/ beside the datasets (the trainer itself runs from this repository's copy).
A fresh clone (the same files, no dataset yet) shows what a DVC user meets first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_cli
from headless_chromium import OFFLINE, dump_dom, screenshot

# Hydra configs every training run composes (params/algorithms/ holds the algorithms'
# declarations, a directory dependency of the train stage).
HYDRA_CONFIGS = sorted(str(p.relative_to(REPO)) for p in (REPO / "params").rglob("*.yaml") if p.parent.name != "algorithms")
PIPELINE_FILES = ("dvc.yaml", "params.yaml", "MLproject")  # and the directories params/, training_code/


def dvc(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("MINIAUTOML_WORKSPACE", None)  # the pipeline's workspace is the checkout it runs in
    return subprocess.run([str(BIN / "dvc"), *args], cwd=ws, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def pipeline_ws(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("pipeline") / "ws"
    ws.mkdir()  # `dataset create` makes a workspace of an existing directory
    created = run_cli(ws, "dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(REPO / "data/demo/intents-part1.csv"))
    assert created.returncode == 0, created.stderr
    copy_pipeline(ws)
    (ws / "params.yaml").write_text((ws / "params.yaml").read_text().replace("epochs: 10", "epochs: 3"))
    with open(ws / ".dvcignore", "a") as fh:
        fh.write("__pycache__/\n")  # as in this repository: bytecode is no change of training_code/
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "pipeline")  # `dvc exp run` commits experiments on top of it
    repro = dvc(ws, "repro")
    assert repro.returncode == 0, repro.stdout[-2000:] + repro.stderr[-2000:]
    return ws


def copy_pipeline(ws: Path) -> None:
    for name in PIPELINE_FILES:
        shutil.copy(REPO / name, ws / name)
    for name in ("params", "training_code"):
        shutil.copytree(REPO / name, ws / name, ignore=shutil.ignore_patterns("__pycache__"))


def git(ws: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True, env=env)


def train_stage_status(ws: Path) -> list:
    """What `dvc status` says changed for the train stage ([] when it is up to date)."""
    out = dvc(ws, "status", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout).get("train", [])


def plot_fields(ws: Path) -> dict[str, set[str]]:
    """Each plot of `dvc plots show` with the CSV columns it draws."""
    out = dvc(ws, "plots", "show", "--json")
    assert out.returncode == 0, out.stderr
    return {name: {row["field"] for plot in plots for row in plot["content"]["data"]["values"]}
            for name, plots in json.loads(out.stdout)["data"].items()}


def test_repro_trains_and_registers_the_prepared_snapshot(pipeline_ws):
    snapshot = json.loads((pipeline_ws / "data/pipeline/snapshot.json").read_text())
    job = json.loads((pipeline_ws / "data/pipeline/job.json").read_text())
    assert snapshot["version_hash"] == "hashAg=="
    assert job["status"] == "succeed"
    assert job["metadata"]["version_hash"] == "hashAg==" and job["metadata"]["model_version"] == "1"
    assert job["metadata"]["params"]["epochs"] == "3"  # taken from params.yaml


def test_dvc_shows_the_runs_metrics_and_plots(pipeline_ws):
    metrics = dvc(pipeline_ws, "metrics", "show", "--json")
    assert metrics.returncode == 0, metrics.stderr
    values = json.loads(metrics.stdout)
    [entry] = [v for v in values.values()]
    assert 0.0 < entry["data"]["data/pipeline/metrics.json"]["data"]["test_accuracy"] <= 1.0
    assert plot_fields(pipeline_ws) == {"loss": {"train_loss", "val_loss"}, "accuracy": {"train_accuracy", "val_accuracy"}}
    rows = (pipeline_ws / "data/pipeline/metrics_epochs.csv").read_text().splitlines()
    assert rows[0] == "epoch,train_loss,train_accuracy,val_loss,val_accuracy" and len(rows) >= 2


def test_dvc_plots_draw_with_no_network(pipeline_ws, tmp_path):
    """The repository's plots.html_template (.ci/setup builds it from npm packages) inlines vega,
    vega-lite and vega-embed: Chromium, with every host unresolvable, draws both charts."""
    template = REPO / ".dvc" / "offline-plots.html"
    assert template.is_file(), f"{template} is missing: `bash .ci/setup` builds it"
    assert "html_template = offline-plots.html" in (REPO / ".dvc" / "config").read_text()
    shutil.copy(template, pipeline_ws / ".dvc" / template.name)  # as .ci/setup makes it in a checkout
    assert dvc(pipeline_ws, "config", "plots.html_template", template.name).returncode == 0
    shown = dvc(pipeline_ws, "plots", "show", "-o", str(tmp_path / "plots"))
    assert shown.returncode == 0, shown.stderr
    page = tmp_path / "plots" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert "<script src=" not in html and "cdn.jsdelivr" not in html and html.count("vegaEmbed('#") == 2

    dom = dump_dom(page.as_uri(), budget_ms=8_000, flags=OFFLINE)
    assert dom.count("<canvas") == 2, dom[-2000:]  # one chart per plot, rendered
    from PIL import Image

    with Image.open(screenshot(page.as_uri(), tmp_path / "plots.png", budget_ms=8_000, flags=OFFLINE)) as image:
        pixels = list(image.convert("RGB").getdata())
    coloured = sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) > 60)  # the lines, not grey axes
    drawn = sum(1 for r, g, b in pixels if min(r, g, b) < 200)
    assert coloured > 200 and drawn > 2_000, (coloured, drawn)


def test_repro_again_without_changes_does_not_retrain(pipeline_ws):
    again = dvc(pipeline_ws, "repro")
    assert again.returncode == 0, again.stderr
    assert "Stage 'train' didn't change, skipping" in again.stdout + again.stderr


def test_train_stage_depends_on_all_training_code_and_every_hydra_config():
    train = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]
    params = {next(iter(p)) if isinstance(p, dict) else p: p for p in train["params"]}
    whole_files = sorted(name for name, p in params.items() if isinstance(p, dict) and p[name] is None)
    file_deps = [d for d in train["deps"] if str(d).endswith(".yaml")]
    configs = [name for name in whole_files + file_deps if name.startswith("params/")]
    assert sorted(configs) == HYDRA_CONFIGS  # a new config file must be listed too
    assert "data/pipeline/snapshot.json" in whole_files  # the prepare record, as params
    assert {"training_code", "MLproject", "params/algorithms"} <= set(train["deps"])
    assert "--algorithm ${algorithm}" in train["cmd"]
    pipeline = yaml.safe_load((REPO / "params.yaml").read_text())
    assert pipeline["algorithm"] == "intent-classification"
    assert {"model_name", "algorithm", "epochs", "batch_size", "seed", "patience"} <= set(params) <= set(pipeline) | set(whole_files)
    assert all(f"-P {key}=${{{key}}}" in train["cmd"] for key in ("epochs", "batch_size", "seed", "patience"))


@pytest.mark.parametrize(
    ("path", "old", "new", "change"),
    [
        ("params/optimizer/adam.yaml", "lr: 0.01", "lr: 0.02", {"params/optimizer/adam.yaml": {"lr": "modified"}}),
        ("params/model/fasttext.yaml", "embed_dim: 100", "embed_dim: 50",
         {"params/model/fasttext.yaml": {"embed_dim": "modified"}}),
        ("training_code/model.py", '"""', '"""  ', {"training_code": "modified"}),
    ],
)
def test_a_change_to_what_training_reads_makes_the_train_stage_stale(pipeline_ws, path, old, new, change):
    file = pipeline_ws / path
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new, 1))
    try:
        assert train_stage_status(pipeline_ws) == [{"changed deps": change}]
    finally:
        file.write_text(text)
    assert train_stage_status(pipeline_ws) == []


def test_dvc_exp_run_sets_a_param_and_retrains(pipeline_ws):
    """`dvc exp run -S epochs=2` sets it in params.yaml, DVC's default params file."""
    exp = dvc(pipeline_ws, "exp", "run", "-S", "epochs=2")
    assert exp.returncode == 0, exp.stdout[-2000:] + exp.stderr[-2000:]
    job = json.loads((pipeline_ws / "data/pipeline/job.json").read_text())
    assert job["status"] == "succeed" and job["metadata"]["params"]["epochs"] == "2"
    assert job["metadata"]["model_version"] == "2"
    rows = (pipeline_ws / "data/pipeline/metrics_epochs.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    shown = dvc(pipeline_ws, "exp", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "\"epochs\": 2" in shown.stdout
    pipeline = (pipeline_ws / "params.yaml").read_text()
    assert "epochs: 2\n" in pipeline and pipeline.replace("epochs: 2", "epochs: 10") == (REPO / "params.yaml").read_text()
    assert (pipeline_ws / "params/config.yaml").read_text() == (REPO / "params/config.yaml").read_text()



def test_snapshot_option_rejects_a_file_that_is_not_a_prepare_record(workspace, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    out = run_cli(workspace, "train", "submit", "--snapshot", str(bad), "--model-name", "m")
    assert out.returncode == 2 and "not a `dataset prepare` JSON" in out.error_line


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """The repository's pipeline as `git clone` gives it: DVC set up, no dataset, no outputs."""
    ws = tmp_path_factory.mktemp("clone") / "repo"
    ws.mkdir()
    copy_pipeline(ws)
    for name in (".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore"):
        (ws / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, ws / name)
    git(ws, "init", "-q")
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "clone")
    return ws


def commits(ws: Path) -> int:
    out = subprocess.run(["git", "-C", str(ws), "rev-list", "--count", "HEAD"], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_dry_repro_on_a_fresh_clone_lists_both_stages(fresh_clone):
    dry = dvc(fresh_clone, "repro", "--dry")
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    assert "miniautoml dataset prepare intents --output data/pipeline/snapshot.json" in dry.stdout
    assert "miniautoml train submit --snapshot data/pipeline/snapshot.json" in dry.stdout
    assert not (fresh_clone / "data").exists()


def test_first_repro_without_the_dataset_says_in_one_line_how_to_create_it(fresh_clone):
    before = commits(fresh_clone)
    repro = dvc(fresh_clone, "repro")
    assert repro.returncode != 0
    errors = [line for line in (repro.stdout + repro.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in repro.stderr, repro.stdout + repro.stderr
    assert errors[0].startswith("error: dataset 'intents' not found in workspace ")
    assert errors[0].endswith("create it first: miniautoml dataset create intents --type TEXT_INTENT --file FILE.csv")
    assert not (fresh_clone / "data/pipeline/snapshot.json").exists()  # no empty record left for the next run
    assert commits(fresh_clone) == before
