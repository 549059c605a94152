"""`miniautoml init [DIR]`: make a workspace (idempotent)."""

from __future__ import annotations

import click

from miniautoml.cli.common import settings_of
from miniautoml.cli.output import emit


@click.command("init")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.pass_context
def init(ctx: click.Context, directory: str | None) -> None:
    """Make DIRECTORY (default: the workspace) a git + DVC workspace with its storage remote."""
    from miniautoml.config import load_settings
    from miniautoml.workspace import init_workspace

    settings = load_settings(directory) if directory else settings_of(ctx)
    emit(init_workspace(settings))


commands = {"init": init}
