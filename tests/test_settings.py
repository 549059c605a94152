"""Settings resolved one way for every `[section] key` (set here > environment > miniautoml.toml >
default), the DVC remote URL written once, and the environment changed only for a block."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from miniautoml.config import (
    S3_BUCKET,
    TRACKING_URI,
    Setting,
    dvc_remote_url,
    load_settings,
    resolve,
)
from miniautoml.environment import preserved_env, temporary_env

KNOB = Setting("demo", "knob", ("MINIAUTOML_TEST_KNOB", "MINIAUTOML_TEST_KNOB_OLD"), "dflt")


@pytest.fixture
def no_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KNOB.env:
        monkeypatch.delenv(name, raising=False)


def test_the_default_when_nothing_sets_it(no_knob) -> None:
    found = resolve(KNOB, {})
    assert (found.value, found.source) == ("dflt", "default")


def test_the_file_beats_the_default(no_knob) -> None:
    found = resolve(KNOB, {"demo": {"knob": "from-file"}})
    assert (found.value, found.source) == ("from-file", "miniautoml.toml [demo] knob")


def test_the_environment_beats_the_file_and_the_first_variable_wins(no_knob, monkeypatch) -> None:
    monkeypatch.setenv("MINIAUTOML_TEST_KNOB_OLD", "old")
    assert resolve(KNOB, {"demo": {"knob": "from-file"}}).value == "old"
    monkeypatch.setenv("MINIAUTOML_TEST_KNOB", "new")
    found = resolve(KNOB, {"demo": {"knob": "from-file"}})
    assert (found.value, found.source) == ("new", "MINIAUTOML_TEST_KNOB")


def test_an_empty_variable_or_value_is_unset(no_knob, monkeypatch) -> None:
    monkeypatch.setenv("MINIAUTOML_TEST_KNOB", "")
    assert resolve(KNOB, {"demo": {"knob": ""}}).source == "default"


def test_a_value_set_in_the_process_beats_the_environment(no_knob, monkeypatch) -> None:
    monkeypatch.setenv("MINIAUTOML_TEST_KNOB", "env")
    found = resolve(KNOB, {}, {KNOB: "here"})
    assert (found.value, found.source) == ("here", "set here")


def test_a_section_that_is_no_table_is_ignored(no_knob) -> None:
    assert resolve(KNOB, {"demo": "not a table"}).value == "dflt"


def test_load_settings_reads_storage_and_mlflow_through_the_resolver(tmp_path: Path, monkeypatch) -> None:
    for setting in (S3_BUCKET, TRACKING_URI):
        for name in setting.env:
            monkeypatch.delenv(name, raising=False)
    (tmp_path / "miniautoml.toml").write_text(
        '[storage]\nbucket = "b1"\n[mlflow]\ntracking_uri = "sqlite:///x.db"\n', encoding="utf-8"
    )
    settings = load_settings(tmp_path)
    assert (settings.storage.bucket, settings.tracking_uri) == ("b1", "sqlite:///x.db")
    monkeypatch.setenv("MINIAUTOML_S3_BUCKET", "b2")
    assert load_settings(tmp_path).storage.bucket == "b2"


def test_with_value_replaces_an_earlier_value(tmp_path: Path, no_knob) -> None:
    settings = load_settings(tmp_path).with_value(KNOB, "a").with_value(KNOB, "b")
    assert settings.get(KNOB).value == "b" and len(settings.values) == 1
    assert settings.tool_env()["MINIAUTOML_TEST_KNOB"] == "b"
    assert "MINIAUTOML_TEST_KNOB" not in os.environ


# --- the DVC remote ----------------------------------------------------------------------------
def test_the_dvc_remote_is_the_local_directory_without_an_endpoint(tmp_path: Path, monkeypatch) -> None:
    for name in ("MINIAUTOML_S3_ENDPOINT", "MINIO_ENDPOINT", "MINIAUTOML_LOCAL_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(tmp_path)
    assert dvc_remote_url(settings) == str(tmp_path.resolve() / ".miniautoml" / "dvc-remote")


def test_the_dvc_remote_is_under_the_bucket_with_an_endpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MINIAUTOML_S3_ENDPOINT", "127.0.0.1:9")
    monkeypatch.setenv("MINIAUTOML_S3_BUCKET", "mybucket")
    assert dvc_remote_url(load_settings(tmp_path)) == "s3://mybucket/dvc"


# --- the environment for a block ---------------------------------------------------------------
def test_temporary_env_sets_and_unsets_then_restores(monkeypatch) -> None:
    monkeypatch.setenv("MINIAUTOML_TEST_A", "before")
    monkeypatch.delenv("MINIAUTOML_TEST_B", raising=False)
    with temporary_env({"MINIAUTOML_TEST_A": None, "MINIAUTOML_TEST_B": "during"}):
        assert "MINIAUTOML_TEST_A" not in os.environ and os.environ["MINIAUTOML_TEST_B"] == "during"
    assert os.environ["MINIAUTOML_TEST_A"] == "before" and "MINIAUTOML_TEST_B" not in os.environ


def test_temporary_env_restores_after_an_error(monkeypatch) -> None:
    monkeypatch.delenv("MINIAUTOML_TEST_A", raising=False)
    with pytest.raises(RuntimeError), temporary_env({"MINIAUTOML_TEST_A": "x"}):
        raise RuntimeError("boom")
    assert "MINIAUTOML_TEST_A" not in os.environ


def test_preserved_env_undoes_what_a_library_exports(monkeypatch) -> None:
    monkeypatch.delenv("MINIAUTOML_TEST_A", raising=False)
    with preserved_env("MINIAUTOML_TEST_A"):
        os.environ["MINIAUTOML_TEST_A"] = "exported"
    assert "MINIAUTOML_TEST_A" not in os.environ
