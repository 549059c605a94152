"""`miniautoml models ...`: the model registry (MLflow), aliases instead of stages."""

from __future__ import annotations

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
    """Model NAME with all versions (algorithm, lineage, test metrics); or one VERSION (number or alias)."""
    from miniautoml.registry import get_version, show_model

    settings = settings_of(ctx)
    emit(get_version(settings, name, version) if version else show_model(settings, name))


@models.command("promote")
@click.argument("name")
@click.argument("version")
@click.option("--alias", default=None, help="Alias to point at VERSION, e.g. champion (required).")
@click.pass_context
def promote(ctx: click.Context, name: str, version: str, alias: str | None) -> None:
    """Point ALIAS of model NAME at VERSION (moving it from any other version)."""
    from miniautoml.errors import UserInputError
    from miniautoml.registry import promote as promote_version

    if not alias:
        raise UserInputError("--alias is required, e.g. --alias champion")
    emit(promote_version(settings_of(ctx), name, version, alias))


commands = {"models": models}
