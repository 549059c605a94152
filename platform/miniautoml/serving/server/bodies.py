"""Request and response bodies of the prediction API: pydantic models declaring the limits, `parse_request`.

Request validation happens here, once: `parse_request` turns a body into a request or an
`InvalidRequest` (one line naming the field; 400, or 413 when only a size limit is broken).
The limits are declared in the models, so the OpenAPI document (/docs.json) states them; they
are the service's `ServingOptions`, so `request_models(options)` makes the request classes.
"""

# No `from __future__ import annotations`: the request classes are made in a function, and
# pydantic resolves their annotations at once (they name that function's locals).

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from miniautoml.errors import UserInputError
from miniautoml.model_ref import MODEL_ID_HELP, MODEL_ID_PATTERN, SPACES, ModelRef
from miniautoml.serving.options import ServingOptions

# A JSON-schema `pattern` matches anywhere: at least one character str.strip() keeps.
NOT_BLANK = rf"[^{SPACES}]"
_NOT_BLANK_RE = re.compile(NOT_BLANK)
_MAX_ERRORS_SHOWN = 3
MAX_MODEL_ID_CHARS = 512


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("miniautoml_invalid", message)


def _too_large(message: str) -> PydanticCustomError:
    return PydanticCustomError("miniautoml_too_large", message)


def _model_ref(value: object) -> ModelRef:
    """A body's `model_id`, parsed here once into the `ModelRef` the pool is asked for."""
    if not isinstance(value, str):  # strict, as the schema says: 42 is not a model id
        raise PydanticCustomError("string_type", "Input should be a valid string")
    if len(value) > MAX_MODEL_ID_CHARS:
        raise PydanticCustomError("string_too_long", f"String should have at most {MAX_MODEL_ID_CHARS} characters")
    try:
        return ModelRef.parse(value)
    except UserInputError as exc:
        raise _invalid(f"model_id: {exc}") from None


# A model id arrives as a string (so the schema says) and is carried on as its parsed ModelRef.
ModelIdField = Annotated[
    ModelRef,
    PlainValidator(_model_ref),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_MODEL_ID_CHARS, "pattern": MODEL_ID_PATTERN}
    ),
]


class ModelRequest(BaseModel):
    """A request body: a `model_id` the grammar accepts; strict types, as the schema says."""

    model_config = ConfigDict(strict=True)  # "3" is not an integer, 42 not a string


@dataclass(frozen=True)
class RequestModels:
    """The request bodies under one set of limits."""

    predict: type[ModelRequest]  # /predict: model_id, document, top_k
    batch: type[ModelRequest]  # /predict_batch: model_id, documents, top_k


def request_models(options: ServingOptions) -> RequestModels:
    """The request classes `PredictRequest` and `BatchRequest` with the limits of `options`."""
    max_chars, max_documents = options.max_document_chars, options.max_batch_documents
    model_id_field = Field(description=MODEL_ID_HELP, json_schema_extra={"example": "intent@champion"})
    top_k_field = Field(default=3, ge=1, le=options.max_top_k, description="how many scores to return")
    text_schema = {"minLength": 1, "maxLength": max_chars, "pattern": NOT_BLANK}

    def check_text(value: str, what: str) -> None:
        if not _NOT_BLANK_RE.search(value):  # the pattern the schema declares, so both agree
            raise _invalid(f"{what} is empty")
        if len(value) > max_chars:
            raise _too_large(
                f"{what} has {len(value)} characters; the limit is {max_chars} (MINIAUTOML_MAX_DOCUMENT_CHARS)"
            )

    class PredictRequest(ModelRequest):
        model_id: ModelIdField = model_id_field
        document: str = Field(description="the text to classify", json_schema_extra=text_schema)
        top_k: int = top_k_field

        @field_validator("document")
        @classmethod
        def _document(cls, value: str) -> str:
            check_text(value, "document")
            return value

    class BatchRequest(ModelRequest):
        model_id: ModelIdField = model_id_field
        documents: list[Annotated[str, Field(json_schema_extra=text_schema)]] = Field(
            description="the texts to classify, answered in order",
            json_schema_extra={"minItems": 1, "maxItems": max_documents},
        )
        top_k: int = top_k_field

        @field_validator("documents")
        @classmethod
        def _documents(cls, value: list[str]) -> list[str]:
            if not value:
                raise _invalid("documents is empty")
            if len(value) > max_documents:
                raise _too_large(
                    f"{len(value)} documents; the limit is {max_documents} (MINIAUTOML_MAX_BATCH_DOCUMENTS)"
                )
            for i, doc in enumerate(value):
                check_text(doc, f"documents[{i}]")
            return value

    return RequestModels(predict=PredictRequest, batch=BatchRequest)


@dataclass(frozen=True)
class InvalidRequest:
    """A body that failed validation: its one-line message and HTTP status (400 or 413)."""

    message: str
    status: int = 400


def parse_request(model: type[ModelRequest], raw: bytes) -> ModelRequest | InvalidRequest:
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


SCORES_HELP = (
    "the top_k labels and their probabilities; empty ({}) when the model gives no probabilities "
    "(a foreign MLflow model whose pyfunc output is labels only, e.g. an mlflow.sklearn model)"
)


class Prediction(BaseModel):
    result: str = Field(description="the most probable label (a foreign model's output, as text)")
    model_id: str = Field(description="the run id of the model that answered")
    model_name: Annotated[str | None, _NULLABLE_STR] = Field(description="registered model name, if the run is registered")
    model_version: Annotated[int | None, _NULLABLE_INT] = Field(description="registered version, if the run is registered")
    scores: dict[str, float] = Field(description=SCORES_HELP)


class DocumentPrediction(BaseModel):
    result: str = Field(description="the most probable label")
    scores: dict[str, float] = Field(description=SCORES_HELP)


class BatchPrediction(BaseModel):
    model_id: str
    model_name: Annotated[str | None, _NULLABLE_STR]
    model_version: Annotated[int | None, _NULLABLE_INT]
    predictions: list[DocumentPrediction]
