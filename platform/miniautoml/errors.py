"""Errors the platform reports to users as one clear line (no traceback)."""

from __future__ import annotations

SHOWN_CHARS = 60  # the most of a user's value an error line echoes


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`repr` of a user's value for an error line, cut to `limit` characters with "…".

    Error lines name what was wrong without echoing a pasted 20,000-character value whole.
    """
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(value)
    return f"{text[:limit] + '…'!r} ({len(text)} characters)"


class MiniAutoMLError(Exception):
    """A failure the user can act on. The CLI prints it as `error: <message>` and exits 2."""

    exit_code = 2


class UserInputError(MiniAutoMLError):
    """Bad input: a file, id, hash, param or field. The message names what and where."""


class NotFoundError(MiniAutoMLError):
    """An id, name, commit or hash that does not exist."""


class StorageError(MiniAutoMLError):
    """The remote storage could not be reached or refused the operation; retry when it is back."""

    exit_code = 3


class WorkspaceBusyError(MiniAutoMLError):
    """Another process holds the workspace lock."""

    exit_code = 4
