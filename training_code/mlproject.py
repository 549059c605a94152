"""The MLproject's parameters, for telling a mistyped `mlflow run -P KEY=VALUE` in one line.

`mlflow run` passes a -P key the entry point does not declare as `--KEY VALUE` after the command,
which Hydra would reject with a lexer trace; the trainer names the valid keys instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import yaml

from miniautoml.suggest import did_you_mean

MLPROJECT = Path(__file__).resolve().parent.parent / "MLproject"
# Hydra's own command-line flags (python -m training_code.train --help lists them).
HYDRA_FLAGS = frozenset({
    "help", "hydra-help", "version", "cfg", "resolve", "package", "run", "multirun", "shell-completion",
    "config-path", "config-name", "config-dir", "experimental-rerun", "info", "overrides",
})  # fmt: skip


@lru_cache(maxsize=1)
def parameter_names() -> tuple[str, ...]:
    """Every parameter some entry point of the MLproject declares, sorted."""
    spec = yaml.safe_load(MLPROJECT.read_text(encoding="utf-8"))
    return tuple(sorted({name for entry in spec["entry_points"].values() for name in entry.get("parameters", {})}))


def undeclared_parameter(args: Sequence[str]) -> str | None:
    """The error line for the first `--KEY VALUE` pair `mlflow run` appended for an undeclared
    -P key, or None when there is none."""
    for i, arg in enumerate(args):
        if not arg.startswith("--") or len(arg) == 2:
            continue
        key = arg[2:].partition("=")[0]
        if key in HYDRA_FLAGS:
            continue
        value = args[i + 1] if i + 1 < len(args) and "=" not in arg else arg.partition("=")[2]
        value = value if len(value) <= 40 else value[:40] + "…"
        valid = parameter_names()
        return (
            f"unknown MLproject parameter -P {key}={value}: {did_you_mean(key, valid)}"
            f"valid keys: {', '.join(valid)} (any other key of params/: -P overrides=\"key=value ...\")"
        )
    return None
