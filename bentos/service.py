"""MiniAutoML prediction service: the book's `Predict(runId, document)` on BentoML 1.4.

Two ways to run it:
- from the repository (`miniautoml serve`, or `bentoml serve service:PredictionService` in
  `bentos/`): any model the workspace's MLflow knows, by run id, NAME@ALIAS or NAME/VERSION,
  fetched on first use into a bounded cache (`miniautoml.serving.ModelPool`);
- as a bento (`miniautoml bento build ...`, then `bentoml serve TAG`): exactly one model, imported
  into the BentoML model store at build time and named by the bento argument `model`; no MLflow
  tracking server is needed at run time.

HTTP (JSON):
  POST /predict        {"model_id": "...", "document": "...", "top_k": 3}
                       -> {"result": label, "model_id": run id, "model_name": str|null,
                           "model_version": int|null, "scores": {label: probability, ... top_k}}
  POST /predict_batch  {"model_id": "...", "documents": ["...", ...], "top_k": 3}
                       -> {"model_id", "model_name", "model_version",
                           "predictions": [{"result", "scores"}, ...]}
  GET  /livez /readyz /metrics   (readyz: only when the tracking store answers)
  GET  /docs.json      the OpenAPI document: limits, model id pattern and error statuses included
model_name/model_version name the registered version the answering run is (null if none), by
whichever id the model was asked for. Errors are one line, `{"error": message}`: 400 malformed
JSON / wrong type / missing or empty field / bad model id (the message names the field),
404 unknown model, 413 body, document or batch too large, 503 overloaded, 504 timed out.

/predict is a BentoML batchable API (adaptive batching): concurrent requests are handed to one
call as a list, grouped by model and run as one batch per model. Its body stays a single object:
`PredictInput` parses it into a one-element list, `PredictOutput` renders each request's own
element (or its error) back. Settings come from the environment; see
`miniautoml.serving.ServingOptions.from_env`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
import bentoml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError
from starlette.responses import Response

from miniautoml import serving

try:  # ~3x faster than json for these small bodies; json when absent (e.g. a slim image)
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")


os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in server logs
log = logging.getLogger("miniautoml.bentos.service")
OPTIONS = serving.ServingOptions.from_env()


class ServiceArgs(BaseModel):
    """Bento arguments (`bentoml build/serve --arg model=...`), set by `miniautoml bento build`."""

    model: str = ""  # BentoML model tag of the one model a bento serves; empty = MLflow registry


ARGS = bentoml.use_arguments(ServiceArgs)


# --------------------------------------------------------------------------------------------
# Request and response bodies
# --------------------------------------------------------------------------------------------


# Request validation happens here, once: `parse_request` turns a body into a request or an
# `InvalidRequest` (one line naming the field; 400, or 413 when only a size limit is broken).
# The limits are declared in the models, so the OpenAPI document (/docs.json) states them.

# A JSON-schema `pattern` matches anywhere: at least one character str.strip() keeps.
_NOT_BLANK = rf"[^{serving.SPACES}]"
_NOT_BLANK_RE = re.compile(_NOT_BLANK)
_MODEL_ID = Field(
    min_length=1,
    max_length=512,
    description=serving.MODEL_ID_HELP,
    json_schema_extra={"pattern": serving.MODEL_ID_PATTERN, "example": "intent@champion"},
)
_TOP_K = Field(default=3, ge=1, le=OPTIONS.max_top_k, description="how many scores to return")
_TEXT_SCHEMA = {"minLength": 1, "maxLength": OPTIONS.max_document_chars, "pattern": _NOT_BLANK}


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("miniautoml_invalid", message)


def _too_large(message: str) -> PydanticCustomError:
    return PydanticCustomError("miniautoml_too_large", message)


def _check_text(value: str, what: str) -> None:
    if not _NOT_BLANK_RE.search(value):  # the pattern the schema declares, so both agree
        raise _invalid(f"{what} is empty")
    if len(value) > OPTIONS.max_document_chars:
        raise _too_large(
            f"{what} has {len(value)} characters; the limit is {OPTIONS.max_document_chars} (MINIAUTOML_MAX_DOCUMENT_CHARS)"
        )


class _ModelRequest(BaseModel):
    model_config = ConfigDict(strict=True)  # "3" is not an integer, 42 not a string: as the schema says

    @field_validator("model_id", check_fields=False)
    @classmethod
    def _model_id(cls, value: str) -> str:
        try:
            serving.parse_model_id(value)
        except serving.UserInputError as exc:
            raise _invalid(f"model_id: {exc}") from None
        return value


class PredictRequest(_ModelRequest):
    model_id: str = _MODEL_ID
    document: str = Field(description="the text to classify", json_schema_extra=_TEXT_SCHEMA)
    top_k: int = _TOP_K

    @field_validator("document")
    @classmethod
    def _document(cls, value: str) -> str:
        _check_text(value, "document")
        return value


class BatchRequest(_ModelRequest):
    model_id: str = _MODEL_ID
    documents: list[Annotated[str, Field(json_schema_extra=_TEXT_SCHEMA)]] = Field(
        description="the texts to classify, answered in order",
        json_schema_extra={"minItems": 1, "maxItems": OPTIONS.max_batch_documents},
    )
    top_k: int = _TOP_K

    @field_validator("documents")
    @classmethod
    def _documents(cls, value: list[str]) -> list[str]:
        if not value:
            raise _invalid("documents is empty")
        if len(value) > OPTIONS.max_batch_documents:
            raise _too_large(
                f"{len(value)} documents; the limit is {OPTIONS.max_batch_documents} (MINIAUTOML_MAX_BATCH_DOCUMENTS)"
            )
        for i, doc in enumerate(value):
            _check_text(doc, f"documents[{i}]")
        return value


@dataclass(frozen=True)
class InvalidRequest:
    """A body that failed validation: its one-line message and HTTP status (400 or 413)."""

    message: str
    status: int = 400


_MAX_ERRORS_SHOWN = 3


def parse_request(model: type[_ModelRequest], raw: bytes) -> Any:
    """`raw` (JSON) as a `model` instance, or an InvalidRequest saying what is wrong in one line."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
    parts = []
    for err in errors[:_MAX_ERRORS_SHOWN]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        own = err["type"].startswith("miniautoml_")  # our messages name their field already
        parts.append(err["msg"] if own or not where else f"{where}: {err['msg']}")
    if len(errors) > _MAX_ERRORS_SHOWN:
        parts.append(f"and {len(errors) - _MAX_ERRORS_SHOWN} more")
    message = " ".join("; ".join(parts).split())[:1000]  # one line, bounded
    if all(err["type"] == "miniautoml_too_large" for err in errors):
        return InvalidRequest(message, 413)
    return InvalidRequest("invalid request: " + message)


# Responses. BentoML's OpenAPI writer keeps only the first branch of `anyOf`, so the nullable
# fields declare OpenAPI 3.0's `nullable` themselves.
_NULLABLE_INT = WithJsonSchema({"type": "integer", "nullable": True})
_NULLABLE_STR = WithJsonSchema({"type": "string", "nullable": True})


class Prediction(BaseModel):
    result: str = Field(description="the most probable label")
    model_id: str = Field(description="the run id of the model that answered")
    model_name: Annotated[str | None, _NULLABLE_STR] = Field(description="registered model name, if the run is registered")
    model_version: Annotated[int | None, _NULLABLE_INT] = Field(description="registered version, if the run is registered")
    scores: dict[str, float] = Field(description="the top_k labels and their probabilities")


class DocumentPrediction(BaseModel):
    result: str
    scores: dict[str, float]


class BatchPrediction(BaseModel):
    model_id: str
    model_name: Annotated[str | None, _NULLABLE_STR]
    model_version: Annotated[int | None, _NULLABLE_INT]
    predictions: list[DocumentPrediction]


@dataclass(frozen=True)
class Reply:
    """One document's answer: HTTP status and JSON body."""

    status: int
    body: dict[str, Any]

    def response(self) -> Response:
        return Response(_dumps(self.body), status_code=self.status, media_type="application/json")


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"error": message})


class PredictInput(bentoml.IODescriptor):
    """/predict's body is ONE request object; the API function receives a list of them.

    A batchable BentoML API takes a list. Parsing the single object into a one-element list keeps
    the book's request shape while the adaptive batcher concatenates the lists of concurrent
    requests into one call. A body that fails validation travels as an InvalidRequest.
    """

    requests: list[PredictRequest]

    @classmethod
    async def from_http_request(cls, request: Any, serde: Any) -> "PredictInput":
        return cls.model_construct(requests=[parse_request(PredictRequest, await request.body())])

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return PredictRequest.model_json_schema(*args, **kwargs)


class BatchInput(bentoml.IODescriptor):
    """/predict_batch's body, parsed as JSON whatever the Content-Type says (as /predict's)."""

    request: BatchRequest

    @classmethod
    async def from_http_request(cls, request: Any, serde: Any) -> "BatchInput":
        return cls.model_construct(request=parse_request(BatchRequest, await request.body()))

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return BatchRequest.model_json_schema(*args, **kwargs)


class PredictOutput(bentoml.IODescriptor):
    """Renders a request's own element of the batch result: a prediction or its error."""

    prediction: Prediction

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        (reply,) = obj  # one request object in -> one reply out
        return reply.response()

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return Prediction.model_json_schema(*args, **kwargs)


class BatchOutput(bentoml.IODescriptor):
    """/predict_batch answers a Response itself; this states its body in the OpenAPI document."""

    prediction: BatchPrediction

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return BatchPrediction.model_json_schema(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Middleware: body size limit before anything parses the body
# --------------------------------------------------------------------------------------------


class RequestSizeLimit:
    """413 for request bodies over `max_bytes` (Content-Length, or counted when chunked)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, scope: dict, receive: Any, send: Any, size: str) -> None:
        await _error(
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
                    return await _error(400, "invalid Content-Length").response()(scope, receive, send)
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


# --------------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------------

_METRICS: dict[str, Any] = {}


def _metrics() -> dict[str, Any]:
    """Prometheus counters, created once per worker (after BentoML set up multiprocess mode)."""
    if not _METRICS:
        import prometheus_client

        _METRICS["loads"] = prometheus_client.Counter(
            "miniautoml_model_loads", "Models loaded into this server's cache", ["run_id"]
        )
        _METRICS["alias_swaps"] = prometheus_client.Counter(
            "miniautoml_alias_swaps", "Aliases switched to another model version", ["model_id"]
        )
        _METRICS["gc_pause"] = prometheus_client.Histogram(
            "miniautoml_gc_pause_seconds",
            "Garbage collection pauses of the server's workers (the usual source of a p99 tail)",
            ["generation"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
        )
    return _METRICS


def _service_config() -> dict[str, Any]:
    config: dict[str, Any] = {
        "workers": OPTIONS.workers,
        "traffic": {"timeout": OPTIONS.request_timeout_seconds},
        "logging": {"access": {"enabled": OPTIONS.access_log}},
    }
    if not OPTIONS.trace_predictions:
        # BentoML wraps every request in OpenTelemetry spans even when nothing samples them
        # (~30% of a /predict's CPU time); keep them off the prediction routes unless asked.
        config["tracing"] = {"excluded_urls": ["/predict"]}
    return config


@bentoml.service(**_service_config())
class PredictionService:
    if ARGS.model:  # a bento: the BentoML model is part of the bento, resolved at start-up
        bento_model = bentoml.models.BentoModel(ARGS.model)

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)  # one worker = one core; one thread is as fast as two here
        metrics = _metrics()
        if ARGS.model:
            self.pool = self._bento_pool()
        else:
            from miniautoml.config import load_settings

            self.settings = load_settings()
            self.pool = serving.pool_for_workspace(
                self.settings,
                OPTIONS,
                on_load=self._loaded,
                on_alias_change=lambda c: metrics["alias_swaps"].labels(model_id=c.model_id).inc(),
            )
            if not self.pool.ready():  # also imports MLflow's store now, before the GC freeze
                log.warning("tracking store %s not reachable yet; /readyz says 503", self.settings.tracking_uri)
        for model_id in OPTIONS.preload:
            try:
                self.pool.get(model_id)
            except Exception as exc:  # a bad preload id must not keep the server down
                log.warning("preload of %s failed: %s", model_id, exc)
        self.pool.start_refresher()
        self._compute = anyio.CapacityLimiter(1)  # big /predict_batch bodies: one at a time
        _tune_gc()
        _observe_gc_pauses(metrics["gc_pause"])

    def _loaded(self, model: serving.LoadedModel) -> None:
        _metrics()["loads"].labels(run_id=model.run_id).inc()
        _tune_gc()  # the first load imports MLflow's pyfunc machinery: freeze that too

    def _bento_pool(self) -> serving.ModelPool:
        stored = self.bento_model  # bentoml.Model in the bento's model store
        labels = dict(stored.info.labels)
        version = labels.get("registered_version") or ""
        source = serving.ModelSource(
            run_id=labels["run_id"],
            model_uri=str(stored.tag),
            name=labels.get("registered_name") or None,
            version=int(version) if version.isdigit() else None,
            dataset_id=labels.get("dataset_id") or None,
            version_hash=labels.get("version_hash") or None,
        )
        resolver = serving.StaticResolver(source, serving.bento_model_ids(source, labels.get("model_id")))
        pool = serving.ModelPool(
            resolver,
            loader=lambda _source: bentoml.mlflow.load_model(stored).unwrap_python_model(),
            capacity=1,
            alias_refresh_seconds=0,
        )
        pool.get(source.run_id)  # load now: a bento is ready when its model is
        return pool

    @bentoml.on_shutdown
    def _close(self) -> None:
        self.pool.close()

    def __is_ready__(self) -> bool:
        return self.pool.ready()

    # -- /predict --------------------------------------------------------------------------------

    @bentoml.api(
        route="/predict",
        input_spec=PredictInput,
        output_spec=PredictOutput,
        batchable=OPTIONS.batching,
        max_batch_size=OPTIONS.max_batch_size,
        max_latency_ms=OPTIONS.max_latency_ms,
    )
    async def predict(self, requests: list[PredictRequest | InvalidRequest]) -> list[Reply]:
        """Classify one document with the model `model_id` names (run id, NAME@ALIAS, NAME/VERSION)."""
        return await self._answer(requests)

    async def _served(self, model_ids: list[str]) -> dict[str, serving.ServedModel | Reply]:
        found: dict[str, serving.ServedModel | Reply] = {}
        missing = []
        for model_id in model_ids:
            served = self.pool.peek(model_id)
            if served is None:
                missing.append(model_id)
            else:
                found[model_id] = served
        if missing:
            loaded = await asyncio.gather(*(self._load(m) for m in missing))
            found.update(zip(missing, loaded))
        return found

    async def _load(self, model_id: str) -> serving.ServedModel | Reply:
        try:
            return await anyio.to_thread.run_sync(self.pool.get, model_id)
        except serving.NotFoundError as exc:
            return _error(404, str(exc))
        except serving.UserInputError as exc:
            return _error(400, str(exc))
        except Exception as exc:
            log.exception("loading model %s failed", model_id)
            return _error(500, f"model {model_id!r} could not be loaded: {type(exc).__name__}")

    async def _answer(self, requests: list[Any]) -> list[Reply]:
        replies: list[Reply | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            if isinstance(req, InvalidRequest):
                replies[i] = _error(req.status, req.message)
            else:
                groups.setdefault(req.model_id, []).append(i)
        served = await self._served(list(groups))
        for model_id, indices in groups.items():
            answer = served[model_id]
            if isinstance(answer, Reply):
                for i in indices:
                    replies[i] = answer
                continue
            by_top_k: dict[int, list[int]] = {}
            for i in indices:
                by_top_k.setdefault(requests[i].top_k, []).append(i)
            for top_k, rows in by_top_k.items():
                try:
                    outputs = answer.model.predict([requests[i].document for i in rows], top_k)
                except Exception as exc:  # a broken model fails its own requests, not the batch
                    log.exception("prediction with run %s failed", answer.run_id)
                    failure = _error(500, f"prediction failed: {type(exc).__name__}")
                    for i in rows:
                        replies[i] = failure
                    continue
                for i, out in zip(rows, outputs):
                    replies[i] = Reply(
                        200,
                        {
                            "result": out["result"],
                            "model_id": answer.run_id,
                            "model_name": answer.name,
                            "model_version": answer.version,
                            "scores": out["scores"],
                        },
                    )
        return replies  # type: ignore[return-value]  # every slot is filled above

    # -- /predict_batch --------------------------------------------------------------------------

    @bentoml.api(route="/predict_batch", input_spec=BatchInput, output_spec=BatchOutput)
    async def predict_batch(self, request: BatchRequest | InvalidRequest) -> Response:
        """Classify many documents with one model, in order."""
        if isinstance(request, InvalidRequest):
            return _error(request.status, request.message).response()
        model_id, documents, top_k = request.model_id, request.documents, request.top_k
        answer = (await self._served([model_id]))[model_id]
        if isinstance(answer, Reply):
            return answer.response()
        if len(documents) <= 64:
            outputs = answer.model.predict(documents, top_k)
        else:  # keep the event loop answering other requests meanwhile
            outputs = await anyio.to_thread.run_sync(answer.model.predict, documents, top_k, limiter=self._compute)
        body = {
            "model_id": answer.run_id,
            "model_name": answer.name,
            "model_version": answer.version,
            "predictions": [{"result": o["result"], "scores": o["scores"]} for o in outputs],
        }
        return Reply(200, body).response()


PredictionService.add_asgi_middleware(RequestSizeLimit, max_bytes=OPTIONS.max_request_bytes)


# BentoML declares 200, 400, 404 and 500 for every API; the prediction routes also answer:
_MORE_ANSWERS = {
    413: "Content Too Large: body over MINIAUTOML_MAX_REQUEST_BYTES, or a document or batch over its limit",
    503: "Service Unavailable: overloaded (queued over MINIAUTOML_BATCH_MAX_LATENCY_MS) or not ready",
    504: "Gateway Timeout: not answered within MINIAUTOML_REQUEST_TIMEOUT_SECONDS",
}


def openapi_document() -> dict[str, Any]:
    """The service's OpenAPI document: BentoML's, plus what it cannot declare (a required body,
    the 413/503/504 answers)."""
    spec = PredictionService.openapi_spec.asdict()
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "title": "Error",
        "required": ["error"],
        "properties": {"error": {"type": "string", "title": "Message", "description": "what went wrong, one line"}},
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for route in ("/predict", "/predict_batch"):
        spec["paths"][route]["post"]["requestBody"]["required"] = True  # no body: 400
        responses = spec["paths"][route]["post"]["responses"]
        for status, description in _MORE_ANSWERS.items():
            responses.setdefault(status, {"description": description, "content": error})
    return spec


class OpenAPIDocument:
    """Answers GET /docs.json with `openapi_document()` (made once per worker)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.body: bytes | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/docs.json":
            return await self.app(scope, receive, send)
        if self.body is None:
            import json

            self.body = json.dumps(openapi_document()).encode("utf-8")  # int status keys: not orjson
        await Response(self.body, media_type="application/json")(scope, receive, send)


PredictionService.add_asgi_middleware(OpenAPIDocument)


def _cancel_request_timeout_timers() -> None:
    """Make BentoML's request-timeout middleware cancel its timer when the request is done.

    BentoML 1.4's `TimeoutMiddleware` schedules `loop.call_later(timeout, ...)` per request and
    never cancels it, so every request leaves a timer handle, a future and a context alive for
    the whole timeout (60 s by default): ~170k objects at 3k req/s, which every full garbage
    collection then walks (pauses of 100-200 ms, the p99 of an otherwise ~1 ms service). This
    replaces its `__call__` with the same logic plus `handle.cancel()`. Skipped (logged) when
    the middleware is not the one this was written for. Off: MINIAUTOML_PATCH_TIMEOUT_TIMERS=0.
    """
    from bentoml._internal.server.http import traffic
    from starlette.responses import JSONResponse

    cls = traffic.TimeoutMiddleware
    if getattr(cls, "_miniautoml_cancels_timers", False):
        return
    if not bentoml.__version__.startswith("1.4.") or not hasattr(cls, "_set_timer_out"):
        log.warning("BentoML %s: request timeout timers left as they are", bentoml.__version__)
        return

    async def __call__(self: Any, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message: Any) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
        try:
            await waiter
        except asyncio.TimeoutError:
            if fut.cancel():
                resp = JSONResponse(
                    {"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504
                )
                await resp(scope, receive, send)
        else:
            await fut
        finally:
            timer.cancel()

    cls.__call__ = __call__
    cls._miniautoml_cancels_timers = True


if os.environ.get("MINIAUTOML_PATCH_TIMEOUT_TIMERS", "1").strip().lower() not in ("0", "false", "no", "off"):
    _cancel_request_timeout_timers()


def _observe_gc_pauses(histogram: Any) -> None:
    """Every collection's pause into `miniautoml_gc_pause_seconds{generation}` (/metrics)."""
    import time

    started = [0.0]
    children = {g: histogram.labels(generation=str(g)) for g in (0, 1, 2)}

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            children[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(callback)


def _tune_gc() -> None:
    """Keep the collector's full passes short: objects alive after start-up or a model load
    (modules, functions, the model) are moved to a generation the collector never walks.

    A full collection walks every tracked object. After start-up there are ~250k, and the first
    model load imports ~260k more (MLflow's pyfunc, SQLAlchemy, training_code); walking them
    took 100-200 ms, several times a minute under load. Called at start-up and after each
    model load (rare). A model's own objects are freed by reference counting when it is evicted
    (they form no cycles), so freezing them leaks nothing.
    """
    if OPTIONS.gc_freeze:
        gc.collect()
        gc.freeze()
    if OPTIONS.gc_threshold:
        gc.set_threshold(*OPTIONS.gc_threshold)
    log.info(
        "gc: %d objects frozen, thresholds %s (pid %d)", gc.get_freeze_count(), gc.get_threshold(), os.getpid()
    )
