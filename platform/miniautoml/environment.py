"""The process environment, changed for the length of a block and put back as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def temporary_env(changes: Mapping[str, str | None]) -> Iterator[None]:
    """Set each variable of `changes` (None: unset it) inside the block; afterwards each is
    restored, or unset again if it was unset. For a library that reads os.environ (MLflow),
    never to pass a setting within this process: `Settings.with_value` does that."""
    saved = {name: os.environ.get(name) for name in changes}
    try:
        _apply(changes)
        yield
    finally:
        _apply(saved)


@contextmanager
def preserved_env(*names: str) -> Iterator[None]:
    """Whatever the block does to `names` (a library that exports them), they end as they began."""
    with temporary_env({name: os.environ.get(name) for name in names}):
        yield


def _apply(values: Mapping[str, str | None]) -> None:
    """Set each variable of `values`; None unsets it."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
