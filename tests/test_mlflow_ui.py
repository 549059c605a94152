"""What a person sees in the MLflow UI after one training job, read from headless Chromium.

The stack (`miniautoml up --no-serve`) serves the MLflow UI on the workspace's store; one dataset is
created, prepared and trained on. Then Chromium renders the UI (a React app) and the tests read its
DOM: the run page must show the dataset input (name `<dataset_id>@<version_hash>`, DVC digest), the
lineage tags (dataset name, id, commit ids, version hash), the code's git commit, the user and a
description; the registered model version page must link back to its run. Screenshots of both
pages are kept in tests/artifacts/ (git-ignored), and a page's DOM too when its check fails.

Chromium is Debian's package, installed by .ci/setup; without it these tests fail (never skip).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BIN, JOB_ENV_DROP, REPO, CliResult, free_port, new_job_workspace, stop_job_processes
from headless_chromium import ChromiumMissing, Page, chromium_path, png_size, screenshot, wait_for_dom
from test_stack import STACK_ENV_DROP, teardown_stack

ARTIFACTS = REPO / "tests" / "artifacts"
DATA = REPO / "data" / "demo" / "intents-part1.csv"
DATASET = "intents"
MODEL = "intent-ui"
SIZE = (1400, 1000)
PAGE_TIMEOUT = 90.0  # seconds one page may take to show everything checked


def child_env(**extra: str) -> dict[str, str]:
    """The caller's environment without variables that point at other stores, ports or workspaces."""
    drop = set(STACK_ENV_DROP) | set(JOB_ENV_DROP)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def ui_cli(workspace: Path, *args: str, timeout: float = 300) -> CliResult:
    proc = subprocess.run([str(BIN / "miniautoml"), "-w", str(workspace), *args], capture_output=True, text=True,
                          env=child_env(), timeout=timeout, stdin=subprocess.DEVNULL)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Trained:
    ui: str  # the MLflow UI's base URL
    experiment_link: str  # `up`'s link to the workspace experiment's runs
    experiment_tags: dict[str, str]
    dataset_id: str
    version_hash: str
    experiment_id: str
    run_id: str
    version: str
    tags: dict[str, str]
    metrics: set[str]
    artifacts: set[str]
    dataset_name: str  # of the run's dataset input
    digest: str
    source: str


def _train(ws: Path, version_hash: str) -> None:
    """One job through the job service, as a user would train."""
    submit = ui_cli(ws, "train", "submit", "--dataset", DATASET, "--version-hash", version_hash,
                    "--model-name", MODEL, "-P", "epochs=2", "--wait", "--timeout", "240")
    assert submit.returncode == 0, f"train submit failed: {submit.stderr[-3000:]}"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, checked before anything starts: a missing browser fails, never skips."""
    problem = None
    try:
        return chromium_path()
    except ChromiumMissing as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="module")
def trained(chromium: Path, tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path):
    ws = new_job_workspace(tmp_path_factory.mktemp("mlflow-ui"), mlflow_template)
    port = free_port()
    try:
        up = ui_cli(ws, "up", "--no-serve", "--mlflow-port", str(port))
        assert up.returncode == 0, up.stderr[-3000:]
        ui, experiment_link = up.json["urls"]["mlflow_ui"], up.json["urls"]["mlflow_experiment"]
        created = ui_cli(ws, "dataset", "create", DATASET, "--type", "TEXT_INTENT", "--file", str(DATA))
        assert created.returncode == 0, created.stderr[-3000:]
        prepared = ui_cli(ws, "dataset", "prepare", DATASET)
        assert prepared.returncode == 0, prepared.stderr[-3000:]
        dataset_id, version_hash = prepared.json["dataset_id"], prepared.json["version_hash"]
        _train(ws, version_hash)

        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=ui, registry_uri=ui)  # what the UI's server reads
        versions = client.search_model_versions(f"name = '{MODEL}'")
        assert len(versions) == 1, versions
        run = client.get_run(versions[0].run_id)
        (dataset_input,) = run.inputs.dataset_inputs
        yield Trained(
            ui=ui, experiment_link=experiment_link,
            experiment_tags=dict(client.get_experiment(run.info.experiment_id).tags), dataset_id=dataset_id, version_hash=version_hash, experiment_id=run.info.experiment_id,
            run_id=run.info.run_id, version=versions[0].version, tags=dict(run.data.tags),
            metrics=set(run.data.metrics), artifacts={a.path for a in client.list_artifacts(run.info.run_id)},
            dataset_name=dataset_input.dataset.name, digest=dataset_input.dataset.digest,
            source=dataset_input.dataset.source,
        )  # fmt: skip
    finally:
        try:
            stop_job_processes(ws)
        finally:
            teardown_stack(ws)


def keep_dom(name: str):
    def save(page: Page) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{name}.html").write_text(page.dom, encoding="utf-8")

    return save


def tag_shown(text: str, key: str, value: str) -> bool:
    """The run page's Tags section renders each tag as `key: value`."""
    return re.search(rf"(?<![\w.]){re.escape(key)}\s*:\s*{re.escape(value)}(?![\w])", text) is not None


def keep_screenshot(url: str, name: str, page: Page) -> Path:
    path = screenshot(url, ARTIFACTS / f"{name}.png", budget_ms=max(page.budget_ms, 8_000), size=SIZE)
    assert png_size(path) == SIZE
    return path


# Tags the trainer sets that the UI lists (it hides `mlflow.*`); `miniautoml.*` are the job service's.
LINEAGE_TAGS = {"dataset_name", "dataset_id", "dataset_commits", "version_hash", "snapshot_md5", "code_dirty", "workspace_rev"}


def test_the_stored_lineage_is_what_the_ui_should_show(trained: Trained):
    """The facts the page checks below compare against, as MLflow's API returns them."""
    tags = trained.tags
    assert trained.dataset_name == f"{trained.dataset_id}@{trained.version_hash}"
    assert trained.digest and trained.digest == tags["snapshot_md5"]
    assert "dvc-remote" in trained.source  # the DVC remote location of the snapshot
    assert {k for k in tags if not k.startswith(("mlflow.", "miniautoml."))} == LINEAGE_TAGS  # no duplicates
    assert (tags["dataset_name"], tags["dataset_id"], tags["dataset_commits"]) == (DATASET, trained.dataset_id, "1")
    assert tags["version_hash"] == trained.version_hash
    assert re.fullmatch(r"[0-9a-f]{40}", tags["mlflow.source.git.commit"]), tags["mlflow.source.git.commit"]
    assert tags["code_dirty"] in ("true", "false") and tags["mlflow.user"]
    assert f"dataset **{DATASET}** (id {trained.dataset_id}), commit 1" in tags["mlflow.note.content"]
    # Epoch times are no metrics (the UI would chart unix timestamps); how the trainer ran is an artifact.
    assert not {"epoch_start_time", "epoch_end_time"} & trained.metrics
    assert {"epochs.json", "job.json"} <= trained.artifacts


def test_run_page_shows_the_dataset_input_and_lineage_tags(trained: Trained):
    url = f"{trained.ui}/#/experiments/{trained.experiment_id}/runs/{trained.run_id}"
    tags = {key: trained.tags[key] for key in ("dataset_name", "dataset_id", "dataset_commits", "version_hash")}
    commit, user = trained.tags["mlflow.source.git.commit"], trained.tags["mlflow.user"]
    description = f"trained on dataset {DATASET} (id {trained.dataset_id}), commit 1, version hash {trained.version_hash}"
    model_link = f"#/models/{MODEL}/versions/{trained.version}"

    def missing(page: Page) -> list[str]:
        text, lacking = page.text, []
        if trained.run_id not in text:
            lacking.append(f"run id {trained.run_id}")
        # The Datasets section lists each input as `name (digest)`.
        if "Datasets" not in text or f"{trained.dataset_name} ({trained.digest})" not in text:
            lacking.append(f"dataset input {trained.dataset_name} ({trained.digest})")
        lacking += [f"tag {key}: {value}" for key, value in tags.items() if not tag_shown(text, key, value)]
        flat = " ".join(text.split())
        if commit[:7] not in text:  # "Source: main:train <short commit>"
            lacking.append(f"git commit {commit}")
        if description not in flat:
            lacking.append(f"description {description!r}")
        if f"Created by {user}" not in flat:
            lacking.append(f"Created by {user}")
        if model_link not in page.links:
            lacking.append(f"link to the registered model version {model_link}")
        return lacking

    page = wait_for_dom(url, missing, timeout=PAGE_TIMEOUT, on_fail=keep_dom("mlflow-ui-run"))
    assert f"{trained.dataset_id}@{trained.version_hash}" in page.text  # the version hash, by name
    keep_screenshot(url, "mlflow-ui-run", page)


def test_model_version_page_links_back_to_the_run(trained: Trained):
    url = f"{trained.ui}/#/models/{MODEL}/versions/{trained.version}"
    run_link = f"#/experiments/{trained.experiment_id}/runs/{trained.run_id}"

    def missing(page: Page) -> list[str]:
        text, lacking = page.text, []
        if f"Version {trained.version}" not in text:
            lacking.append(f"heading Version {trained.version}")
        if "Source Run" not in text or run_link not in page.links:
            lacking.append(f"Source Run link {run_link}")
        if trained.run_id not in text:
            lacking.append(f"run id {trained.run_id} (the version's run_id tag)")
        return lacking

    page = wait_for_dom(url, missing, timeout=PAGE_TIMEOUT, on_fail=keep_dom("mlflow-ui-model-version"))
    assert trained.run_id in page.text
    keep_screenshot(url, "mlflow-ui-model-version", page)


def test_our_experiment_is_marked_as_a_model_training_one(trained: Trained):
    assert trained.experiment_tags["mlflow.experimentKind"] == "custom_model_development"
    assert trained.experiment_link == f"{trained.ui}/#/experiments/{trained.experiment_id}?workflowType=machine_learning"


def test_the_experiment_link_opens_on_the_runs_table_not_the_genai_dashboard(trained: Trained):
    """MLflow 3's UI opens an experiment on its GenAI overview (traces 0) unless told otherwise."""
    run_name = trained.tags["mlflow.runName"]

    def missing(page: Page) -> list[str]:
        text, lacking = page.text, []
        if not text.startswith(f"Runs - Experiment {trained.experiment_id}"):
            lacking.append(f"the runs page (title 'Runs - Experiment {trained.experiment_id}')")
        if run_name not in text or "1 matching run" not in text:
            lacking.append(f"the run {run_name} in the runs table")
        return lacking

    page = wait_for_dom(trained.experiment_link, missing, timeout=PAGE_TIMEOUT, on_fail=keep_dom("mlflow-ui-experiment"))
    assert "Traces 0" not in page.text and "Token Usage" not in page.text
    keep_screenshot(trained.experiment_link, "mlflow-ui-experiment", page)
