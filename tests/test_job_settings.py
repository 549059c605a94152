"""The jobs settings a runner reads (jobs/slots.py): environment first, then miniautoml.toml, each
bad value one line naming where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from miniautoml.config import Settings, load_settings
from miniautoml.errors import UserInputError
from miniautoml.jobs import backends, slots


def _settings(tmp_path: Path, toml: str = "") -> Settings:
    (tmp_path / "miniautoml.toml").write_text(toml, encoding="utf-8")
    return load_settings(tmp_path)


def test_defaults_without_any_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(slots.MAX_RUNNERS_ENV, raising=False)
    monkeypatch.delenv(slots.IDLE_ENV, raising=False)
    settings = _settings(tmp_path)
    assert slots.max_runners(settings) == slots.DEFAULT_MAX_RUNNERS
    assert slots.idle_seconds(settings) == slots.DEFAULT_IDLE_SECONDS


def test_the_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(slots.MAX_RUNNERS_ENV, "3")
    monkeypatch.setenv(slots.IDLE_ENV, "2.5")
    settings = _settings(tmp_path, "[jobs]\nmax_runners = 1\nrunner_idle_seconds = 9\n")
    assert (slots.max_runners(settings), slots.idle_seconds(settings)) == (3, 2.5)


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_a_bad_runner_count_in_the_file_names_the_file_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.delenv(slots.MAX_RUNNERS_ENV, raising=False)
    with pytest.raises(UserInputError, match=r"^miniautoml.toml \[jobs\] max_runners=.*expected a whole number >= 0$"):
        slots.max_runners(_settings(tmp_path, f'[jobs]\nmax_runners = "{value}"\n'))


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_a_bad_idle_time_in_the_environment_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv(slots.IDLE_ENV, value)
    with pytest.raises(UserInputError, match=rf"^{slots.IDLE_ENV}='{value}': expected a number of seconds >= 0$"):
        slots.idle_seconds(_settings(tmp_path))


def test_a_value_set_in_the_process_wins_and_reaches_child_processes_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A sweep raises max_runners for its trials without touching os.environ: the runners it
    starts get the value in their environment (`tool_env`)."""
    monkeypatch.setenv(slots.MAX_RUNNERS_ENV, "1")
    settings = _settings(tmp_path).with_value(slots.MAX_RUNNERS, 4)
    assert slots.max_runners(settings) == 4
    assert settings.tool_env()[slots.MAX_RUNNERS_ENV] == "4"
    assert slots.max_runners(_settings(tmp_path)) == 1


def test_the_file_is_read_again_at_each_look(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A live runner sees an edited miniautoml.toml (its idle time, its slots)."""
    monkeypatch.delenv(slots.IDLE_ENV, raising=False)
    settings = _settings(tmp_path, "[jobs]\nrunner_idle_seconds = 5\n")
    assert slots.idle_seconds(settings) == 5.0
    (tmp_path / "miniautoml.toml").write_text("[jobs]\nrunner_idle_seconds = 7\n", encoding="utf-8")
    assert slots.idle_seconds(settings) == 7.0


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        ("warp", "", rf"^{backends.BACKEND_ENV} 'warp': unknown jobs backend"),
        (None, '[jobs]\nbackend = "warp"\n', r"^miniautoml.toml \[jobs\] backend 'warp': unknown jobs backend"),
    ],
)
def test_a_bad_backend_names_where_it_was_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env, toml, message):
    if env is None:
        monkeypatch.delenv(backends.BACKEND_ENV, raising=False)
    else:
        monkeypatch.setenv(backends.BACKEND_ENV, env)
    with pytest.raises(UserInputError, match=message):
        backends.choose(_settings(tmp_path, toml))
