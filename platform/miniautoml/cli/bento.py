"""`miniautoml bento ...`: one model packed with the prediction service (a BentoML bento)."""

from __future__ import annotations

import click

from miniautoml.cli.common import settings_of
from miniautoml.cli.output import emit, info


@click.group("bento")
def bento() -> None:
    """Bentos: a model plus the prediction service, servable and containerizable without MLflow."""


@bento.command("build")
@click.argument("model_id")
@click.option("--name", default=None, help="Bento and BentoML model name [default: the registered name].")
@click.pass_context
def build(ctx: click.Context, model_id: str, name: str | None) -> None:
    """Build a bento serving MODEL_ID (NAME@ALIAS, NAME/VERSION or a run id).

    Prints the bento's tag; then `bentoml serve TAG --host 127.0.0.1` or `bentoml containerize TAG`
    (with BENTOML_HOME set to the workspace's store, shown as `bentoml_home`).
    """
    from miniautoml.bentos import build_bento

    info(f"building a bento of {model_id} ...")
    emit(build_bento(settings_of(ctx), model_id, name=name))


@bento.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Bentos in the workspace's BentoML store, newest first."""
    from miniautoml.bentos import list_bentos

    emit(list_bentos(settings_of(ctx)))


commands = {"bento": bento}
