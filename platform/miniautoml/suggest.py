"""The closest valid key to a mistyped one, so an error line suggests one key instead of listing forty."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice most like `word` (`epoch` -> `epochs`), or None when none is close."""
    found = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'did you mean epochs? ' to put in an error line, or '' when no choice is close."""
    match = closest(word, choices)
    return f"did you mean {match}? " if match else ""
