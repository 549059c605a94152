"""The BentoML face of the prediction API: IO descriptors of its routes, service config, OpenAPI additions.

/predict is a BentoML batchable API (adaptive batching): concurrent requests are handed to one
call as a list. Its body stays a single object: the input descriptor parses it into a
one-element list, `PredictOutput` renders each request's own element (or its error) back.
Bodies are parsed as JSON whatever the Content-Type says; one that fails validation travels to
the API function as an `InvalidRequest`, which answers it.
"""

# No `from __future__ import annotations`: the input descriptors are made in functions, and
# pydantic resolves their annotations at once (they name those functions' arguments).

from typing import Any

import bentoml
from starlette.responses import Response

from miniautoml.serving.server.bodies import BatchPrediction, ModelRequest, Prediction, parse_request
from miniautoml.serving.options import ServingOptions


def service_config(options: ServingOptions) -> dict[str, Any]:
    """The `@bentoml.service(...)` configuration that `options` ask for."""
    config: dict[str, Any] = {
        "workers": options.workers,
        "traffic": {"timeout": options.request_timeout_seconds},
        "logging": {"access": {"enabled": options.access_log}},
    }
    if not options.trace_predictions:
        # BentoML wraps every request in OpenTelemetry spans even when nothing samples them
        # (~30% of a /predict's CPU time); keep them off the prediction routes unless asked.
        config["tracing"] = {"excluded_urls": ["/predict"]}
    return config


def predict_input(request_model: type[ModelRequest]) -> type[bentoml.IODescriptor]:
    """/predict's input: ONE request object in the body, a one-element list for the API function.

    A batchable BentoML API takes a list. Parsing the single object into a one-element list keeps
    the book's request shape while the adaptive batcher concatenates the lists of concurrent
    requests into one call.
    """

    class PredictInput(bentoml.IODescriptor):
        requests: list[request_model]  # type: ignore[valid-type]

        @classmethod
        async def from_http_request(cls, request: Any, serde: Any) -> "PredictInput":
            return cls.model_construct(requests=[parse_request(request_model, await request.body())])

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return request_model.model_json_schema(*args, **kwargs)

    return PredictInput


def batch_input(request_model: type[ModelRequest]) -> type[bentoml.IODescriptor]:
    """/predict_batch's input: the request object, for the API function's `request`."""

    class BatchInput(bentoml.IODescriptor):
        request: request_model  # type: ignore[valid-type]

        @classmethod
        async def from_http_request(cls, request: Any, serde: Any) -> "BatchInput":
            return cls.model_construct(request=parse_request(request_model, await request.body()))

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return request_model.model_json_schema(*args, **kwargs)

    return BatchInput


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


# BentoML declares 200, 400, 404 and 500 for every API; the prediction routes also answer:
MORE_ANSWERS = {
    422: "Unprocessable Content: the model cannot classify text (its signature takes no single string input)",
    413: "Content Too Large: body over MINIAUTOML_MAX_REQUEST_BYTES, or a document or batch over its limit",
    503: "Service Unavailable: overloaded (queued over MINIAUTOML_BATCH_MAX_LATENCY_MS) or not ready",
    504: "Gateway Timeout: not answered within MINIAUTOML_REQUEST_TIMEOUT_SECONDS",
}
ROUTES = ("/predict", "/predict_batch")


def complete_openapi(
    spec: dict[str, Any], *, api_keys: bool = False, registered_only: bool = False
) -> dict[str, Any]:
    """BentoML's OpenAPI document `spec` plus what it cannot declare: a required body and the
    413/503/504 answers of the prediction routes (changed in place, and returned); with
    `api_keys`, the Bearer security scheme and 401, with `registered_only` 403."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "title": "Error",
        "required": ["error"],
        "properties": {"error": {"type": "string", "title": "Message", "description": "what went wrong, one line"}},
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for route in ROUTES:
        spec["paths"][route]["post"]["requestBody"]["required"] = True  # no body: 400
        responses = spec["paths"][route]["post"]["responses"]
        for status, description in MORE_ANSWERS.items():
            responses.setdefault(status, {"description": description, "content": error})
        if api_keys:
            spec["paths"][route]["post"]["security"] = [{"bearerAuth": []}]
            responses.setdefault(401, {"description": "Unauthorized: no or a wrong API key", "content": error})
        if registered_only:
            responses.setdefault(
                403, {"description": "Forbidden: the run is not a registered model version", "content": error}
            )
    if api_keys:
        spec["components"].setdefault("securitySchemes", {})["bearerAuth"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "an API key of the server's keys file (MINIAUTOML_API_KEYS_FILE)",
        }
    return spec
