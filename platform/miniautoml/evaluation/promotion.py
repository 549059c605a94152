"""`models promote` through the gate: candidate and holder evaluated on one golden set, then decided.

Without a golden set (and no `--dataset/--version-hash`) the alias moves as before (`gate: none`).
With one, the candidate and the version holding the alias now are evaluated on it (cached runs),
`gate.decide` applies the rule with MLflow's validation, the decision is recorded on the
candidate version (tags), and the alias moves only if it passed (or `force`). Bad input fails
before anything is evaluated or moved.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from miniautoml import registry
from miniautoml.adapters import mlflow_evaluation as ev
from miniautoml.config import Settings
from miniautoml.errors import NotFoundError
from miniautoml.evaluation import gate, golden as golden_sets
from miniautoml.evaluation.records import Evaluation, GateDecision, GateRule, GateSide, PromotionResult
from miniautoml.evaluation.service import evaluate
from miniautoml.model_ref import ModelRef

GATE_TAG = "miniautoml.gate"  # on the candidate version: passed | failed | forced (the latest decision)
BASELINE_TAG = "miniautoml.gate.baseline_version"
RUNS_TAG = "miniautoml.gate.evaluation_runs"  # candidate's and baseline's evaluation run ids
ALIAS_DECISION_PREFIX = "miniautoml.gate.alias."  # + alias: the latest decision for that alias (JSON)

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


def _side(evaluation: Evaluation) -> GateSide:
    return GateSide(evaluation.model_version, evaluation.run_id, dict(evaluation.metrics))


def _holder(settings: Settings, name: str, alias: str) -> str | None:
    try:
        return registry.get_version(settings, ModelRef.in_model(name, alias)).version
    except NotFoundError:
        return None


def decision_json(decision: GateDecision) -> dict[str, Any]:
    return {**dataclasses.asdict(decision), "failed": decision.failed_checks}


def _record(settings: Settings, name: str, decision: GateDecision) -> None:
    """The decision on the candidate version, as tags the MLflow UI shows."""
    value = ev.json_tag(decision_json(decision))
    runs = [decision.candidate.evaluation_run_id] + ([decision.baseline.evaluation_run_id] if decision.baseline else [])
    ev.set_version_tags(settings, name, decision.candidate.version, {
        GATE_TAG: decision.outcome,
        BASELINE_TAG: decision.baseline.version if decision.baseline else "",
        RUNS_TAG: ",".join(runs),
        ALIAS_DECISION_PREFIX + decision.alias: value,
    })


def decisions_of(tags: dict[str, str]) -> list[dict[str, Any]]:
    """The gate decisions recorded on a version (one per alias it was promoted to), newest first."""
    found = []
    for key, value in tags.items():
        if key.startswith(ALIAS_DECISION_PREFIX):
            try:
                found.append(json.loads(value))
            except ValueError:
                continue
    return sorted(found, key=lambda d: d.get("decided_at") or "", reverse=True)


def promote(
    settings: Settings,
    name: str,
    version: str,
    alias: str,
    rule: GateRule | None = None,
    *,
    force: bool = False,
    dataset: str | None = None,
    version_hash: str | None = None,
    progress: Progress = _noop,
) -> PromotionResult:
    """Move `alias` of model `name` to `version` if it passes the gate (see the module's docstring)."""
    rule = rule or GateRule()
    alias = registry.check_alias(alias)
    candidate = registry.get_version(settings, ModelRef.of_version(name, version))
    target = golden_sets.resolve(settings, candidate.name, dataset, version_hash)
    holder = _holder(settings, candidate.name, alias)
    if target is None:
        moved = registry.promote(settings, ModelRef.of_version(candidate.name, candidate.version), alias)
        return PromotionResult(candidate.name, candidate.version, alias, "none", True, holder, None, [], moved)
    progress(f"gate: {candidate.name} version {candidate.version} vs @{alias} "
             f"({'version ' + holder if holder else 'nobody'}) on {target.dataset_id}@{target.version_hash}")
    mine = evaluate(settings, candidate.name, candidate.version, target, progress)
    theirs = evaluate(settings, candidate.name, holder, target, progress) if holder else None
    decision = gate.decide(
        rule, alias, _side(mine), _side(theirs) if theirs else None, ev.validate, force=force, golden=target,
        decided_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    _record(settings, candidate.name, decision)
    moved = decision.outcome != "failed"
    if moved:
        registry.promote(settings, ModelRef.of_version(candidate.name, candidate.version), alias)
    after = registry.get_version(settings, ModelRef.of_version(candidate.name, candidate.version))
    return PromotionResult(candidate.name, candidate.version, alias, decision.outcome, moved, holder, decision,
                           decision.failed_checks, after)
