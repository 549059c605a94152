"""Credentials out of URIs before they are printed, logged or written anywhere.

`redact_uri("postgresql://bob:s3cret@db/mlflow?sslmode=require&password=x")` gives
`postgresql://bob:***@db/mlflow?sslmode=require&password=***`: the user name stays (it says who),
the password and secret-looking query parameters become `***`. Anything not a URI is returned as is.
`redact_text` does the same to every URI inside a longer text (an argv word, a log or error line).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose value is a credential (matched case-insensitively, as whole names or suffixes).
SECRET_PARAMS = re.compile(
    r"(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|credential|signature|sig)s?$",
    re.IGNORECASE,
)
# A URI inside text: a scheme, `://`, then up to whitespace or a quote (argv words come shell-quoted).
URI_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def _netloc(netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, _password = userinfo.partition(":")
    return f"{user}:{MASK}@{hostport}" if colon else f"{userinfo}@{hostport}"


def redact_uri(uri: str | None) -> str | None:
    """`uri` with its userinfo password and credential query parameters replaced by `***`."""
    if not uri or not isinstance(uri, str) or "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return re.sub(r"//[^/@\s]*@", f"//{MASK}@", uri)  # unparseable: drop the whole userinfo
    netloc = _netloc(parts.netloc)
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(SECRET_PARAMS.search(name) for name, _ in pairs):
            query = urlencode(
                [(name, MASK if SECRET_PARAMS.search(name) else value) for name, value in pairs], safe="*/:"
            )
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def has_credentials(uri: str | None) -> bool:
    """Whether `uri` carries something `redact_uri` would hide."""
    return bool(uri) and redact_uri(uri) != uri


def redact_text(text: str) -> str:
    """`text` with every URI in it passed through `redact_uri`: `data.path='s3://u:pw@h/x'` or
    `API request to http://u:pw@host/... failed` keep their shape, lose the password."""
    return URI_IN_TEXT.sub(lambda match: redact_uri(match.group(0)) or "", text)
