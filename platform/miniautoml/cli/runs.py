"""`miniautoml runs ...`: the metadata store (training runs, per-epoch metrics, lineage)."""

from __future__ import annotations

import click

from miniautoml.cli.common import settings_of
from miniautoml.cli.output import emit


@click.group("runs")
def runs() -> None:
    """Training runs as the book's metadata store shows them."""


@runs.command("show")
@click.argument("run_id", metavar="RUN_ID")
@click.pass_context
def show(ctx: click.Context, run_id: str) -> None:
    """{"run_info": ...} of RUN_ID (= job id = model id)."""
    from miniautoml.runs import show_run

    emit({"run_info": show_run(settings_of(ctx), run_id)})


@runs.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.pass_context
def list_(ctx: click.Context, limit: int) -> None:
    """Runs, newest first."""
    from miniautoml.runs import list_runs

    emit(list_runs(settings_of(ctx), limit=limit))


commands = {"runs": runs}
