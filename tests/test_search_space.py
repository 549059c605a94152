"""The sweep's search-space grammar (Hydra's Optuna sweeper): -P KEY=EXPR -> Optuna distributions."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from miniautoml.errors import UserInputError
from miniautoml.sweeps.search_space import format_value, parse_dimension, parse_search_space


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("lr", "interval(0.001, 0.1)", FloatDistribution(0.001, 0.1)),
        ("lr", "tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("epochs", "int(interval(1, 5))", IntDistribution(1, 5)),
        ("batch_size", "int(tag(log, interval(8, 64)))", IntDistribution(8, 64, log=True)),
        ("batch_size", "tag(log, int(interval(8, 64)))", IntDistribution(8, 64, log=True)),
        ("model", "choice(book, fasttext)", CategoricalDistribution(["book", "fasttext"])),
        ("batch_size", "16,32,64", CategoricalDistribution(["16", "32", "64"])),
    ],
)
def test_an_expression_becomes_its_optuna_distribution(key: str, text: str, expected) -> None:
    space = parse_search_space({key: text})
    assert space.distributions() == {key: expected}
    assert space.described() == {key: text}


def test_a_plain_value_is_fixed_for_every_trial() -> None:
    space = parse_search_space({"epochs": "2", "lr": "interval(0.01, 0.1)"})
    assert space.fixed == {"epochs": "2"}
    assert [d.key for d in space.searched] == ["lr"]


def test_a_trials_params_are_hydra_override_values() -> None:
    space = parse_search_space({"epochs": "int(interval(1, 3))", "lr": "interval(0.01, 0.1)", "seed": "7"})
    params = space.params_of({"epochs": 2, "lr": 0.0123})
    assert params == {"seed": "7", "epochs": "2", "lr": "0.0123"}
    assert format_value(1e-05, "float") == "1e-05"  # Hydra reads exponents as floats


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("lr", "interval(0.1)", "interval(a,b) takes two numbers, got 1"),
        ("lr", "interval(0.1, 0.01)", "needs low < high"),
        ("lr", "interval(a, 1)", "interval bound 'a' is not a number"),
        ("lr", "interval(nan, 1)", "not a finite number"),
        ("lr", "interval(0.1, 1", "unbalanced '('"),
        ("lr", "interval(0.1, 1))", "text after the closing ')'"),
        ("lr", "interval(0.1, 1)x(2)", "text after the closing ')'"),
        ("lr", "uniform(0.1, 1)", "unknown function 'uniform'"),
        ("lr", "tag(log, interval(0, 1))", "a log interval needs low > 0"),
        ("lr", "tag(linear, interval(1, 2))", "unknown tag 'linear'"),
        ("epochs", "int(interval(1.5, 3))", "whole-number bounds"),
        ("model", "choice()", "at least one value"),
        ("model", "choice(book, book)", "a value repeats"),
        ("model", "choice(book, interval(1, 2))", "choice(...) takes plain values"),
        ("lr", "", "empty value"),
    ],
)
def test_bad_syntax_is_one_line_naming_the_argument(key: str, text: str, message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        parse_dimension(key, text)
    line = str(caught.value)
    assert line.startswith(f"-P {key}={text}: ") and message in line and "\n" not in line


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("learning_rate", "interval(0.01, 0.1)", "not a training parameter"),
        ("epochs", "interval(1, 5)", "epochs is a whole number; use int(interval(a,b))"),
        ("model", "interval(1, 2)", "model is a config group; use choice("),
        ("model", "choice(book, resnet)", "'resnet': unknown"),
        ("lr", "choice(0.1, fast)", "lr='fast': expected a number"),
        ("batch_size", "choice(16, 1.5)", "expected a whole number"),
        ("optimizer.name", "interval(1, 2)", "not a number"),
    ],
)
def test_keys_and_values_are_the_documented_parameters(key: str, text: str, message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        parse_search_space({key: text})
    assert str(caught.value).startswith(f"-P {key}={text}: ") and message in str(caught.value)


def test_a_space_without_a_searched_key_is_refused() -> None:
    with pytest.raises(UserInputError, match="nothing to search"):
        parse_search_space({"epochs": "2"})
