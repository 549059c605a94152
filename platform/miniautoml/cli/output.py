"""JSON on stdout for machines, one-line errors and progress on stderr for people."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click


def json_default(obj: Any) -> Any:
    """`json.dumps(default=...)` hook: dataclasses (at any depth), paths, pydantic models."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


FORMAT_KEY = "miniautoml.format"  # ctx.meta: the `--format` of a list/show command (None: auto)


def output_format() -> str:
    """`json` or `table`: a list/show command's `--format`, else table on a terminal and JSON when
    piped; every other command prints JSON."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or FORMAT_KEY not in ctx.meta:
        return "json"
    return ctx.meta[FORMAT_KEY] or ("table" if sys.stdout.isatty() else "json")


def emit(obj: Any) -> None:
    """Print one JSON document to stdout (or its table, see `output_format`)."""
    text = json.dumps(obj, default=json_default, indent=2, ensure_ascii=False)
    if output_format() == "table":
        from miniautoml.cli.tables import render

        text = render(json.loads(text))
    click.echo(text)


def write_json(path: str, obj: Any) -> None:
    """`emit`'s JSON into the file `path` instead, atomically: a failed command leaves none."""
    from miniautoml.files import atomic_write_text

    atomic_write_text(path, json.dumps(obj, default=json_default, indent=2, ensure_ascii=False) + "\n")


def info(message: str) -> None:
    """Human progress to stderr."""
    print(message, file=sys.stderr, flush=True)
