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


def emit(obj: Any) -> None:
    """Print one JSON document to stdout."""
    click.echo(json.dumps(obj, default=json_default, indent=2, ensure_ascii=False))


def info(message: str) -> None:
    """Human progress to stderr."""
    print(message, file=sys.stderr, flush=True)
