"""Errors the platform reports to users as one clear line (no traceback)."""

from __future__ import annotations


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
