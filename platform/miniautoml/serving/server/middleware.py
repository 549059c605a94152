"""ASGI middleware of the prediction service: API keys, the request-body size limit and the /docs.json route."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from miniautoml.serving.server.answers import error


# Paths answered without a key: probes, the OpenAPI document, the Swagger UI and its files.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/docs.json", "/"})
OPEN_PREFIXES = ("/static_content/",)


class BearerAuth:
    """401 for requests without `Authorization: Bearer <key>` of one of `keys` (an ApiKeys),
    on every path but the open ones (probes and docs), before anything reads the body."""

    def __init__(self, app: Any, keys: Any) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return await self.app(scope, receive, send)
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if self.keys.allows(authorization):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        message = (
            "missing API key: send 'Authorization: Bearer <key>'"
            if authorization is None
            else "invalid API key: send 'Authorization: Bearer <key>' with a key of the server's keys file"
        )
        response = error(401, message).response()
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)


class RequestSizeLimit:
    """413 for request bodies over `max_bytes` (Content-Length, or counted when chunked),
    before anything parses the body."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, scope: dict, receive: Any, send: Any, size: str) -> None:
        await error(
            413, f"request body of {size} bytes is over the limit of {self.max_bytes} (MINIAUTOML_MAX_REQUEST_BYTES)"
        ).response()(scope, receive, send)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return await error(400, "invalid Content-Length").response()(scope, receive, send)
                if length > self.max_bytes:
                    return await self._reject(scope, receive, send, str(length))
                return await self.app(scope, receive, send)
        # No Content-Length (chunked): read up to the limit, then replay the body.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)  # disconnect: let the app see it
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                return await self._reject(scope, receive, send, f"more than {self.max_bytes}")
            chunks.append(body)
            more = message.get("more_body", False)
        replay = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        sent = False

        async def replay_receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return replay
            return await receive()

        await self.app(scope, replay_receive, send)


class OpenAPIDocument:
    """Answers GET /docs.json with `document()` (made once per worker, on first request)."""

    def __init__(self, app: Any, document: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.document = document
        self.body: bytes | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/docs.json":
            return await self.app(scope, receive, send)
        if self.body is None:
            self.body = json.dumps(self.document()).encode("utf-8")  # int status keys: not orjson
        await Response(self.body, media_type="application/json")(scope, receive, send)
