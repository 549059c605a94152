"""The book's version hash: a bitset of selected commit ids, base64 of its little-endian bytes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from miniautoml.errors import UserInputError, shown

PREFIX = "hash"


def version_hash(commit_ids: Iterable[int]) -> str:
    """{1} -> 'hashAg==', {1, 2} -> 'hashBg==', {} -> 'hash' (trailing zero bytes dropped)."""
    bits = 0
    for cid in commit_ids:
        if cid < 0:
            raise ValueError(f"commit id {cid} is negative")
        bits |= 1 << cid
    raw = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
    return PREFIX + base64.b64encode(raw).decode("ascii")


def commit_ids(hash_: str) -> list[int]:
    """The selected commit ids of a version hash; a malformed hash is a clear input error."""
    if not hash_.startswith(PREFIX):
        raise UserInputError(f"version hash {shown(hash_)}: must start with {PREFIX!r}")
    body = hash_[len(PREFIX):]
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise UserInputError(f"version hash {shown(hash_)}: not valid base64 after {PREFIX!r}") from None
    if version_hash(ids := _bits(int.from_bytes(raw, "little"))) != hash_:
        raise UserInputError(f"version hash {shown(hash_)}: not in canonical form")
    return ids


def _bits(value: int) -> list[int]:
    return [i for i in range(value.bit_length()) if value >> i & 1]


def dirname(hash_: str) -> str:
    """A file-system-safe name for a hash (base64 may contain '/')."""
    return hash_.replace("/", "_").replace("+", "-")
