"""The gate's decision as a pure function: metrics in, a decision out, checked by MLflow's validation."""

from __future__ import annotations

import pytest

from miniautoml.adapters.mlflow_evaluation import validate
from miniautoml.errors import UserInputError
from miniautoml.evaluation.gate import decide, parse_rule
from miniautoml.evaluation.records import GateRule, GateSide


def side(version: str, **metrics: float) -> GateSide:
    return GateSide(version, f"run-{version}", metrics)


def test_a_candidate_better_than_the_holder_passes():
    decision = decide(GateRule(), "champion", side("2", accuracy=0.9), side("1", accuracy=0.8), validate)
    assert decision.outcome == "passed" and decision.failed_checks == []
    assert [c.check for c in decision.checks] == ["accuracy >= holder + 0"]


def test_a_candidate_worse_than_the_holder_fails_naming_the_check_and_both_values():
    decision = decide(GateRule(), "champion", side("2", accuracy=0.5), side("1", accuracy=0.8), validate)
    assert decision.outcome == "failed" and decision.failed_checks == ["accuracy >= holder + 0"]
    assert "0.5" in decision.checks[0].message and "0.8" in decision.checks[0].message


def test_a_tie_passes_with_min_delta_zero():
    assert decide(GateRule(), "a", side("2", accuracy=0.8), side("1", accuracy=0.8), validate).outcome == "passed"


def test_a_positive_min_delta_requires_beating_the_holder_by_that_much():
    rule = GateRule(min_delta=0.05)
    assert decide(rule, "a", side("2", accuracy=0.84), side("1", accuracy=0.8), validate).outcome == "failed"
    assert decide(rule, "a", side("2", accuracy=0.86), side("1", accuracy=0.8), validate).outcome == "passed"


def test_a_negative_min_delta_lets_a_slightly_worse_candidate_pass():
    rule = GateRule(min_delta=-0.05)
    assert decide(rule, "a", side("2", accuracy=0.77), side("1", accuracy=0.8), validate).outcome == "passed"
    assert decide(rule, "a", side("2", accuracy=0.74), side("1", accuracy=0.8), validate).outcome == "failed"


def test_log_loss_is_compared_lower_is_better():
    rule = GateRule(metric="log_loss")
    assert decide(rule, "a", side("2", log_loss=0.3), side("1", log_loss=0.5), validate).outcome == "passed"
    failed = decide(rule, "a", side("2", log_loss=0.7), side("1", log_loss=0.5), validate)
    assert failed.failed_checks == ["log_loss <= holder - 0"]


def test_every_threshold_must_be_met_even_without_a_holder():
    rule = GateRule(thresholds={"accuracy": 0.85, "macro_f1": 0.5})
    decision = decide(rule, "champion", side("1", accuracy=0.8, macro_f1=0.6), None, validate)
    assert decision.outcome == "failed" and decision.failed_checks == ["accuracy >= 0.85"]
    assert decision.baseline is None


def test_no_holder_and_no_thresholds_passes():
    assert decide(GateRule(), "champion", side("1", accuracy=0.1), None, validate).outcome == "passed"


def test_a_metric_missing_from_the_candidate_fails_its_check():
    """A threshold on log_loss for a model without scores (an sklearn pyfunc): MLflow says it is missing."""
    decision = decide(GateRule(thresholds={"log_loss": 1.0}), "a", side("2", accuracy=0.9), None, validate)
    assert decision.outcome == "failed" and "missing" in decision.checks[0].message


def test_a_metric_missing_from_the_holder_fails_the_comparison():
    decision = decide(GateRule(metric="log_loss"), "a", side("2", log_loss=0.2), side("1", accuracy=0.9), validate)
    assert decision.outcome == "failed" and "missing from the holder" in decision.checks[0].message


def test_force_records_forced_when_the_checks_fail_and_keeps_them():
    decision = decide(GateRule(), "a", side("2", accuracy=0.1), side("1", accuracy=0.8), validate, force=True)
    assert decision.outcome == "forced" and decision.failed_checks == ["accuracy >= holder + 0"]
    passing = decide(GateRule(), "a", side("2", accuracy=0.9), side("1", accuracy=0.8), validate, force=True)
    assert passing.outcome == "passed"


def test_parse_rule_reads_the_cli_words():
    rule = parse_rule("macro_f1", "-0.01", ["accuracy=0.85", "log_loss=1.5"])
    assert rule == GateRule("macro_f1", -0.01, {"accuracy": 0.85, "log_loss": 1.5})


@pytest.mark.parametrize(
    "metric, delta, thresholds, message",
    [
        ("accuracy", "0.0", ["recall=0.9"], "--threshold 'recall': unknown metric; expected one of accuracy, macro_f1"),
        ("accuracy", "0.0", ["accuracy"], "--threshold 'accuracy': expected metric=value"),
        ("accuracy", "0.0", ["accuracy=high"], "--threshold accuracy= 'high': not a number"),
        ("accuracy", "abc", [], "--min-delta 'abc': not a number"),
        ("accuracy", "nan", [], "--min-delta 'nan': not a finite number"),
        ("auc", "0.0", [], "--metric 'auc': unknown metric"),
    ],
)
def test_parse_rule_rejects_bad_words_in_one_line(metric, delta, thresholds, message):
    with pytest.raises(UserInputError) as caught:
        parse_rule(metric, delta, thresholds)
    assert str(caught.value).startswith(message)
