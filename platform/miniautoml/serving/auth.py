"""API keys of the prediction service: the keys file, read at start-up and reread when it changes.

One key per line; blank lines and `#` comments are ignored. A request is let in when its
`Authorization: Bearer <key>` matches one of the keys; every key is compared, in constant time.
A file that goes missing, unreadable or empty after start-up lets nobody in until it is fixed.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable

from miniautoml.errors import UserInputError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_keys(text: str) -> tuple[bytes, ...]:
    """The keys of a keys file's `text`: one a line, blank lines and `#` comments skipped."""
    keys = []
    for line in text.splitlines():
        key = line.strip()
        if key and not key.startswith("#"):
            keys.append(key.encode("utf-8"))
    return tuple(keys)


def read_keys_file(path: str) -> tuple[bytes, ...]:
    """The keys in `path`; UserInputError (one line) when it is missing, unreadable or has none."""
    try:
        with open(path, encoding="utf-8") as f:
            keys = parse_keys(f.read())
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise UserInputError(f"API keys file {path}: cannot read it ({reason}) (--api-keys-file)") from None
    if not keys:
        raise UserInputError(f"API keys file {path}: no keys in it (one key per line) (--api-keys-file)")
    return keys


class ApiKeys:
    """The keys of a keys file, reread when its mtime, size or inode change (checked at most
    every `check_seconds`). Raises UserInputError at construction if the file is not usable."""

    def __init__(self, path: str, check_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.check_seconds = check_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._keys = read_keys_file(path)
        self._checked = clock()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def keys(self) -> tuple[bytes, ...]:
        """The current keys (empty when the file went missing, unreadable or empty)."""
        now = self.clock()
        if now - self._checked < self.check_seconds:
            return self._keys
        with self._lock:
            if now - self._checked >= self.check_seconds:
                self._checked = now
                stamp = self._stat()
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._keys = read_keys_file(self.path)
                        log.info("API keys reloaded from %s: %d key(s)", self.path, len(self._keys))
                    except UserInputError as exc:
                        self._keys = ()
                        log.warning("%s; every protected request is refused until it is fixed", exc)
        return self._keys

    def allows(self, authorization: bytes | str | None) -> bool:
        """Whether an `Authorization` header value carries one of the keys as a Bearer token."""
        if not authorization:
            return False
        if isinstance(authorization, str):
            authorization = authorization.encode("latin-1", "replace")
        scheme, _, token = authorization.strip().partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            return False
        found = False
        for key in self.keys():  # every key, without stopping at a match
            found |= hmac.compare_digest(token, key)
        return found
