"""The prediction server's HTTP client: POST documents, get the JSON answer or a one-line error."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from miniautoml.errors import MiniAutoMLError, NotFoundError, UserInputError


class ServerUnavailableError(MiniAutoMLError):
    """The prediction server could not be reached or failed; retry when it is back."""

    exit_code = 3


def request_prediction(
    url: str, model_id: str, documents: Sequence[str], *, top_k: int = 3, timeout: float = 30.0
) -> dict[str, Any]:
    """POST one document to `url`/predict (several to /predict_batch); the JSON answer.

    HTTP errors become one-line errors: 404 NotFoundError, other 4xx UserInputError,
    5xx and connection failures ServerUnavailableError.
    """
    import urllib.error  # here: importing the package stays cheap for commands that never call
    import urllib.request

    if not documents:
        raise UserInputError("no document given")
    base = url.rstrip("/")
    if len(documents) == 1:
        route, body = "/predict", {"model_id": model_id, "document": documents[0], "top_k": top_k}
    else:
        route, body = "/predict_batch", {"model_id": model_id, "documents": list(documents), "top_k": top_k}
    request = urllib.request.Request(
        base + route,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        message = _error_message(exc.read())
        if exc.code == 404:
            raise NotFoundError(message) from None
        if 400 <= exc.code < 500:
            raise UserInputError(f"{message} (HTTP {exc.code})") from None
        raise ServerUnavailableError(f"prediction server at {base}: HTTP {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerUnavailableError(f"prediction server at {base} not reachable: {reason}") from None


def _error_message(raw: bytes) -> str:
    """The `error` of a JSON error body (with pydantic's first detail), else the body's text."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300] or "no details"
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if not isinstance(data, dict) or "error" not in data:
        return " ".join(text.split())[:300]
    message = str(data["error"])
    detail = data.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", []))
        message += f": {where + ': ' if where else ''}{first.get('msg', '')}"
    return message
