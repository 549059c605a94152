"""Pieces every command group shares: the workspace's settings and `key=value` options."""

from __future__ import annotations

import click

from miniautoml.config import Settings, load_settings, require_workspace
from miniautoml.errors import UserInputError, shown

# Commands that make their workspace: these create the directory when it does not exist.
MAKE_WORKSPACE = {("init",), ("lab",), ("up",)}
# Commands that initialise an existing directory on first use (README: "the first `dataset create`
# does it too"). Every other command needs a workspace and says so, creating nothing, outside one.
INITIALISE_WORKSPACE = {("dataset", "create")}


def _command(ctx: click.Context) -> tuple[str, ...]:
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return tuple(reversed(names))


def settings_of(ctx: click.Context) -> Settings:
    """Settings of the workspace chosen by the top-level `--workspace` option.

    Outside a workspace (see `config.require_workspace`) a command fails with one line, exit 2,
    unless it is one that makes its workspace.
    """
    root = ctx.find_root()
    explicit = (root.obj or {}).get("workspace")
    settings = load_settings(explicit)
    command = _command(ctx)
    if command not in MAKE_WORKSPACE:
        named_by = None
        if explicit:
            from_env = root.get_parameter_source("workspace") is click.core.ParameterSource.ENVIRONMENT
            named_by = "MINIAUTOML_WORKSPACE" if from_env else "-w"
        require_workspace(settings.workspace, named_by, initialise=command in INITIALISE_WORKSPACE)
    return settings


def parse_pairs(pairs: tuple[str, ...] | list[str], what: str = "tag") -> dict[str, str]:
    """`("k=v", ...)` -> `{"k": "v"}`; a pair without `=` or with an empty key is an error."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"{what} {shown(pair)}: expected key=value")
        result[key.strip()] = value
    return result
