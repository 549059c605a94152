"""The model registry: a successful job adds a model version; aliases promote versions."""

from __future__ import annotations

import pytest
from conftest import job_cli, job_settings

from miniautoml.errors import NotFoundError, UserInputError
from miniautoml.model_ref import ModelRef
from miniautoml.registry import get_version, promote, registered_version, show_model, versions_of_run


def test_successful_job_registers_a_version_tagged_with_its_run(trained_job):
    result = job_cli(trained_job.workspace, "models", "show", "intent")
    assert result.returncode == 0, result.stderr
    model = result.json
    version = next(v for v in model["versions"] if v["run_id"] == trained_job.job_id)
    assert version["status"] == "READY"
    assert version["tags"]["run_id"] == trained_job.job_id


def test_models_list_names_the_trained_model(trained_job):
    models = {m["name"]: m for m in job_cli(trained_job.workspace, "models", "list").json}
    assert models["intent"]["latest_version"] is not None
    assert [v["algorithm"] for v in models["intent"]["versions"]] == ["intent-classification"]


def test_models_show_prints_each_versions_algorithm_lineage_and_metrics(trained_job):
    """A job submitted with the default algorithm records it on its run; the version shows it
    (its `algorithm` tag, else the run's), with the run, the data it learned from and its test accuracy."""
    status = job_cli(trained_job.workspace, "train", "status", trained_job.job_id).json
    assert status["metadata"]["algorithm"] == "intent-classification"
    shown = job_cli(trained_job.workspace, "models", "show", "intent")
    assert shown.returncode == 0, shown.stderr
    version = next(v for v in shown.json["versions"] if v["run_id"] == trained_job.job_id)
    assert version["algorithm"] == "intent-classification"
    assert 0.0 <= version["metrics"]["test_accuracy"] <= 1.0
    assert {"dataset_id", "version_hash", "run_id"} <= set(version)
    one = job_cli(trained_job.workspace, "models", "show", "intent", "1").json
    assert (one["algorithm"], one["metrics"]) == (version["algorithm"], version["metrics"])


def test_the_trainer_alone_registers_one_version_with_its_lineage(trained_job):
    """One owner of registration: the trainer registers and tags the version; the runner only
    reads it back for the job record (no second version, no second set of tags)."""
    settings = job_settings(trained_job.workspace)
    versions = versions_of_run(settings, trained_job.job_id)
    assert [(v.name, v.version) for v in versions] == [("intent", "1")]
    assert versions[0].tags["run_id"] == trained_job.job_id and versions[0].tags["snapshot_md5"]
    assert registered_version(settings, trained_job.job_id, "intent").version == "1"
    assert registered_version(settings, trained_job.job_id, "intent-copy") is None


def test_promote_points_an_alias_at_a_version(trained_job):
    promoted = job_cli(trained_job.workspace, "models", "promote", "intent", "1", "--alias", "champion")
    assert promoted.returncode == 0, promoted.stderr
    # no golden set: the alias moves as before, and the result says no gate judged it
    assert (promoted.json["version"], promoted.json["gate"], promoted.json["moved"]) == ("1", "none", True)
    assert "champion" in promoted.json["model"]["aliases"]
    model = show_model(job_settings(trained_job.workspace), "intent")
    assert model.aliases["champion"] == "1"


def test_a_versions_aliases_are_the_same_in_list_show_and_show_version(trained_job):
    """One truth: the model's alias map. `models list` and `models show NAME` read versions with
    `search_model_versions`, which gives every version `aliases: []`; they must agree with it."""
    promote(job_settings(trained_job.workspace), ModelRef.of_version("intent", 1), "canary")
    listed = next(m for m in job_cli(trained_job.workspace, "models", "list").json if m["name"] == "intent")
    shown = job_cli(trained_job.workspace, "models", "show", "intent").json
    one = job_cli(trained_job.workspace, "models", "show", "intent", "1").json
    assert listed["aliases"]["canary"] == shown["aliases"]["canary"] == "1"
    in_list = next(v for v in listed["versions"] if v["version"] == "1")["aliases"]
    in_show = next(v for v in shown["versions"] if v["version"] == "1")["aliases"]
    assert "canary" in in_list and in_list == in_show == one["aliases"]


def test_models_show_as_a_table_lists_each_version_with_its_aliases(trained_job):
    promote(job_settings(trained_job.workspace), ModelRef.of_version("intent", 1), "tabled")
    shown = job_cli(trained_job.workspace, "models", "show", "intent", "--format", "table")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:2] == ["name", "intent"]
    header = lines[lines.index("versions:") + 1]
    row = lines[lines.index("versions:") + 2]
    assert header.split()[:2] == ["NAME", "VERSION"] and "ALIASES" in header
    assert "tabled" in row[header.index("ALIASES"):]


def test_show_resolves_a_version_by_alias(trained_job):
    promote(job_settings(trained_job.workspace), ModelRef.of_version("intent", 1), "staging")
    shown = job_cli(trained_job.workspace, "models", "show", "intent", "staging")
    assert shown.returncode == 0, shown.stderr
    assert shown.json["version"] == "1"


@pytest.mark.parametrize(
    "args, message",
    [
        (["show", "nosuch"], "error: model 'nosuch' not found in the registry"),
        (["promote", "intent", "99", "--alias", "champion"], "error: model 'intent' has no version '99'"),
        (["promote", "intent", "1"], "error: --alias is required"),
        (["promote", "intent", "one", "--alias", "champion"], "error: version 'one': expected a version number"),
        (["show", "intent", "no such"], "error: version 'no such': expected a version number (1, 2, ...) or an alias"),
    ],
)
def test_bad_registry_requests_are_clear_cli_errors(trained_job, args: list[str], message: str):
    result = job_cli(trained_job.workspace, "models", *args)
    assert result.returncode == 2
    assert result.error_line.startswith(message)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda s: get_version(s, ModelRef.parse("intent/99")), NotFoundError, "model 'intent' has no version '99'"),
        (lambda s: get_version(s, ModelRef.parse("intent@nosuch-alias")), NotFoundError, "has no alias 'nosuch-alias'"),
        (lambda s: get_version(s, ModelRef.parse("a" * 32)), UserInputError, "expected NAME/VERSION or NAME@ALIAS"),
        (lambda s: promote(s, ModelRef.parse("nosuch/1"), "champion"), NotFoundError, "model 'nosuch' not found"),
        (lambda s: promote(s, ModelRef.parse("intent/1"), "latest"), UserInputError, "alias 'latest'"),
        (lambda s: promote(s, ModelRef.parse("intent/1"), "v2"), UserInputError, "alias 'v2'"),
        (lambda s: promote(s, ModelRef.parse("intent@champion"), "best"), UserInputError, "promote a version number"),
    ],
)
def test_bad_registry_requests_raise_clear_errors(trained_job, call, error, message):
    with pytest.raises(error, match=message):
        call(job_settings(trained_job.workspace))
