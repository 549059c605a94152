"""`miniautoml models ...`: the model registry (MLflow), aliases instead of stages."""

from __future__ import annotations

import sys

import click

from miniautoml.cli.common import settings_of
from miniautoml.cli.output import emit


@click.group("models")
def models() -> None:
    """Registered models and their versions."""


@models.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Registered models with their aliases and versions (algorithm, lineage, test metrics)."""
    from miniautoml.registry import list_models

    emit(list_models(settings_of(ctx)))


@models.command("show")
@click.argument("name")
@click.argument("version", required=False)
@click.pass_context
def show(ctx: click.Context, name: str, version: str | None) -> None:
    """Model NAME with all versions (algorithm, lineage, test metrics); or one VERSION (number or
    alias) with its evaluations and gate decisions."""
    from miniautoml.registry import get_version, show_model

    settings = settings_of(ctx)
    if not version:
        emit(show_model(settings, name))
        return
    import dataclasses

    from miniautoml.evaluation.promotion import decisions_of
    from miniautoml.evaluation.service import evaluations_of
    from miniautoml.model_ref import ModelRef

    found = get_version(settings, ModelRef.in_model(name, version))
    emit({**dataclasses.asdict(found), "evaluations": evaluations_of(settings, found.name, found.version),
          "gate_decisions": decisions_of(found.tags)})


@models.command("promote")
@click.argument("name")
@click.argument("version")
@click.option("--alias", default=None, help="Alias to point at VERSION, e.g. champion (required).")
@click.option("--metric", default="accuracy", show_default=True, help="Metric the candidate must not lose on.")
@click.option("--min-delta", default="0.0", show_default=True,
              help="Candidate >= holder + MIN_DELTA on --metric (negative: that much worse still passes).")
@click.option("--threshold", "thresholds", multiple=True, metavar="METRIC=VALUE",
              help="An absolute bound the candidate must meet, e.g. accuracy=0.85 (repeatable).")
@click.option("--dataset", default=None, help="Gate on this dataset (id or name) instead of the golden set.")
@click.option("--version-hash", default=None, help="Version hash of --dataset's snapshot.")
@click.option("--force", is_flag=True, help="Move the alias even if the gate refuses (recorded as forced).")
@click.pass_context
def promote(ctx: click.Context, name: str, version: str, alias: str | None, metric: str, min_delta: str,
            thresholds: tuple[str, ...], dataset: str | None, version_hash: str | None, force: bool) -> None:
    """Point ALIAS of model NAME at VERSION, through the gate when NAME has a golden set.

    The candidate and the version holding ALIAS are evaluated on the golden set; the alias moves
    only if the candidate meets every --threshold and is no worse than the holder by more than
    -MIN_DELTA on --metric. Refused: exit 1, the alias unchanged, the decision in the JSON.
    """
    from miniautoml.cli.output import info
    from miniautoml.errors import UserInputError
    from miniautoml.evaluation.gate import parse_rule
    from miniautoml.evaluation.promotion import promote as promote_version

    if not alias:
        raise UserInputError("--alias is required, e.g. --alias champion")
    rule = parse_rule(metric, min_delta, thresholds)
    result = promote_version(settings_of(ctx), name, version, alias, rule, force=force, dataset=dataset,
                             version_hash=version_hash, progress=info)
    emit(result)
    if not result.moved:
        info(f"refused: {result.name} version {result.version} failed {'; '.join(result.failed)}")
        sys.exit(1)


@models.command("golden")
@click.argument("name")
@click.option("--dataset", default=None, help="Dataset (id or name) of the golden set.")
@click.option("--version-hash", default=None, help="Version hash of the snapshot, e.g. hashAg==.")
@click.pass_context
def golden(ctx: click.Context, name: str, dataset: str | None, version_hash: str | None) -> None:
    """Set (with --dataset and --version-hash) or show the golden set of model NAME."""
    from miniautoml.errors import UserInputError
    from miniautoml.evaluation.golden import get_golden, set_golden

    settings = settings_of(ctx)
    if dataset is None and version_hash is None:
        emit({"model": name, "golden": get_golden(settings, name)})
        return
    if not dataset or not version_hash:
        raise UserInputError("--dataset and --version-hash go together: give both to set the golden set")
    emit({"model": name, "golden": set_golden(settings, name, dataset, version_hash)})


@models.command("evaluate")
@click.argument("name")
@click.argument("version")
@click.option("--dataset", default=None, help="Dataset (id or name) to evaluate on (default: the golden set).")
@click.option("--version-hash", default=None, help="Version hash of that dataset's snapshot.")
@click.pass_context
def evaluate(ctx: click.Context, name: str, version: str, dataset: str | None, version_hash: str | None) -> None:
    """Evaluate VERSION of model NAME on a snapshot: one MLflow evaluation run (cached)."""
    from miniautoml.cli.output import info
    from miniautoml.evaluation.service import evaluate_version

    emit(evaluate_version(settings_of(ctx), name, version, dataset, version_hash, progress=info))


commands = {"models": models}
