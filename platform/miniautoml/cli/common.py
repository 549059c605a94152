"""Pieces every command group shares: the workspace's settings and `key=value` options."""

from __future__ import annotations

import click

from miniautoml.config import Settings, load_settings
from miniautoml.errors import UserInputError


def settings_of(ctx: click.Context) -> Settings:
    """Settings of the workspace chosen by the top-level `--workspace` option."""
    root = ctx.find_root()
    return load_settings((root.obj or {}).get("workspace"))


def parse_pairs(pairs: tuple[str, ...] | list[str], what: str = "tag") -> dict[str, str]:
    """`("k=v", ...)` -> `{"k": "v"}`; a pair without `=` or with an empty key is an error."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"{what} {pair!r}: expected key=value")
        result[key.strip()] = value
    return result
