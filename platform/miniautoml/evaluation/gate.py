"""The gate's decision, as a pure function of two evaluations' metrics and a rule.

The checks are MLflow's (`mlflow.validate_evaluation_results` with one `MetricThreshold` each,
through the `validate` callable the caller passes: `adapters.mlflow_evaluation.validate`); this
module only says which checks a rule makes and records their outcomes, so it is tested with plain
dicts. `min_absolute_change` must be positive for MLflow, so a rule's comparison with the holder
is a `min_absolute_change` when `min_delta > 0`, else an absolute threshold at holder + min_delta.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from miniautoml.errors import UserInputError, shown
from miniautoml.evaluation.records import METRICS, Bound, Check, GateDecision, GateRule, GateSide, GoldenSet

# (bound, candidate metrics, baseline metrics or None) -> None if it passed, else MLflow's message
Validate = Callable[[Bound, Mapping[str, float], Mapping[str, float] | None], str | None]


def check_metric(name: str, where: str) -> str:
    name = (name or "").strip()
    if name not in METRICS:
        raise UserInputError(f"{where} {shown(name)}: unknown metric; expected one of {', '.join(METRICS)}")
    return name


def parse_number(value: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{where} {shown(value)}: not a number") from None
    if not math.isfinite(number):
        raise UserInputError(f"{where} {shown(value)}: not a finite number")
    return number


def parse_rule(metric: str = "accuracy", min_delta: str | float = 0.0, thresholds: list[str] | tuple[str, ...] = ()) -> GateRule:
    """A rule from the CLI's words: `--metric`, `--min-delta`, `--threshold k=v ...`; bad ones raise one line."""
    limits: dict[str, float] = {}
    for item in thresholds:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise UserInputError(f"--threshold {shown(item)}: expected metric=value, e.g. accuracy=0.85")
        limits[check_metric(key, "--threshold")] = parse_number(value.strip(), f"--threshold {key.strip()}=")
    return GateRule(check_metric(metric, "--metric"), parse_number(str(min_delta), "--min-delta"), limits)


def bounds(rule: GateRule, baseline: Mapping[str, float] | None) -> list[tuple[str, Bound]]:
    """The checks `rule` makes, each named for people: the thresholds, then the comparison with the
    holder (none when there is no holder)."""
    found: list[tuple[str, Bound]] = []
    for metric, limit in rule.thresholds.items():
        up = METRICS[metric]
        found.append((f"{metric} {'>=' if up else '<='} {limit:g}", Bound(metric, up, threshold=limit)))
    if baseline is None:
        return found
    up, delta = METRICS[rule.metric], rule.min_delta
    name = f"{rule.metric} {'>=' if up else '<='} holder {'+' if up else '-'} {delta:g}"
    if delta > 0 or rule.metric not in baseline:
        found.append((name, Bound(rule.metric, up, min_absolute_change=delta if delta > 0 else None)))
    else:
        held = baseline[rule.metric]
        found.append((name, Bound(rule.metric, up, threshold=held + delta if up else held - delta)))
    return found


def decide(
    rule: GateRule,
    alias: str,
    candidate: GateSide,
    baseline: GateSide | None,
    validate: Validate,
    *,
    force: bool = False,
    golden: GoldenSet | None = None,
    decided_at: str | None = None,
) -> GateDecision:
    """Passed when every check passes; failed otherwise; forced when `force` (the checks still recorded)."""
    checks = []
    base_metrics = baseline.metrics if baseline is not None else None
    for name, bound in bounds(rule, base_metrics):
        if baseline is not None and bound.threshold is None and bound.metric not in baseline.metrics:
            # A comparison with a holder that lacks the metric (MLflow 3.17 raises KeyError): say so ourselves.
            message = f"metric {bound.metric} is missing from the holder's evaluation (version {baseline.version})"
        else:
            message = validate(bound, candidate.metrics, base_metrics)
        checks.append(Check(name, bound.metric, message is None, message))
    passed = all(c.passed for c in checks)
    outcome = "passed" if passed else ("forced" if force else "failed")
    return GateDecision(outcome, alias, rule, candidate, baseline, checks, golden, decided_at)
