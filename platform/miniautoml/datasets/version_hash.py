"""The book's version hash: a bitset of selected commit ids, base64 of its little-endian bytes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from miniautoml.errors import UserInputError, shown

PREFIX = "hash"


@dataclass(frozen=True)
class VersionHash:
    """A parsed version hash: its canonical text and the commit ids it selects, ascending.

    Parse text once where it enters (`parse`: the CLI, a job request, the trainer's argument),
    build one from commits (`of`), and carry the value; `str()` is the text.
    """

    text: str
    commits: tuple[int, ...]

    @classmethod
    def of(cls, commit_ids: Iterable[int]) -> "VersionHash":
        """{1} -> 'hashAg==', {1, 2} -> 'hashBg==', {} -> 'hash' (trailing zero bytes dropped)."""
        bits = 0
        for cid in commit_ids:
            if cid < 0:
                raise ValueError(f"commit id {cid} is negative")
            bits |= 1 << cid
        raw = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
        return cls(PREFIX + base64.b64encode(raw).decode("ascii"), tuple(_bits(bits)))

    @property
    def dirname(self) -> str:
        """A file-system-safe name for the hash (base64 may contain '/')."""
        return self.text.replace("/", "_").replace("+", "-")

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> VersionHash:
    """The version hash in `text` (surrounding blanks ignored); a malformed one is a one-line
    UserInputError."""
    text = text.strip()
    if not text.startswith(PREFIX):
        raise UserInputError(f"version hash {shown(text)}: must start with {PREFIX!r}")
    try:
        raw = base64.b64decode(text[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise UserInputError(f"version hash {shown(text)}: not valid base64 after {PREFIX!r}") from None
    parsed = VersionHash.of(_bits(int.from_bytes(raw, "little")))
    if parsed.text != text:
        raise UserInputError(f"version hash {shown(text)}: not in canonical form")
    return parsed


def _bits(value: int) -> list[int]:
    return [i for i in range(value.bit_length()) if value >> i & 1]
