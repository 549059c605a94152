"""Prediction serving: model ids, their resolution, the model pool, launching and calling the server.

One module per concern:
  options        the MINIAUTOML_* knobs (`ServingOptions`)
  model_id       the model-id grammar (`parse_model_id`, `MODEL_ID_PATTERN`)
  resolver       model id -> MLflow run / registry version, or a bento's one model; the loader
  predictors     loaded model -> predict_texts(texts, top_k): our models' fast path, a pyfunc
                 adapter for any other MLflow model, 422 for one that cannot take text
  pool           the bounded cache of loaded models, aliases followed (`ModelPool`)
  launch         the `bentoml serve` command line (`server_launch`)
  client         the HTTP client (`request_prediction`)
and the plain parts of the BentoML service in `bentos/service.py`, imported only by it (they
import pydantic, starlette or bentoml; this package itself imports neither MLflow nor BentoML):
  bodies         request and response bodies, `parse_request`
  answers        batch grouping and replies (`Answers`)
  middleware     the request-size limit, the OpenAPI document route
  bentoml_io     BentoML IO descriptors, service config, OpenAPI additions
  worker         per-worker metrics and GC tuning
(the patches of BentoML's internals it applies are in `miniautoml.compat.bentoml`)
"""

from miniautoml.serving.client import ServerUnavailableError, request_prediction
from miniautoml.serving.launch import server_launch
from miniautoml.serving.model_id import MODEL_ID_HELP, MODEL_ID_PATTERN, SPACES, ModelRef, parse_model_id
from miniautoml.serving.options import ServingOptions
from miniautoml.serving.predictors import Predictor, PyfuncPredictor, UnsupportedModelError, predictor_for
from miniautoml.serving.pool import AliasChange, LoadedModel, ModelPool, ServedModel, pool_for_workspace
from miniautoml.serving.resolver import (
    Loader,
    MlflowResolver,
    ModelSource,
    PythonModel,
    Resolver,
    StaticResolver,
    bento_model_ids,
    load_python_model,
    tracking_store_reachable,
)

__all__ = [
    "MODEL_ID_HELP",
    "MODEL_ID_PATTERN",
    "SPACES",
    "AliasChange",
    "LoadedModel",
    "Loader",
    "MlflowResolver",
    "ModelPool",
    "ModelRef",
    "ModelSource",
    "Predictor",
    "PyfuncPredictor",
    "PythonModel",
    "Resolver",
    "ServedModel",
    "ServerUnavailableError",
    "ServingOptions",
    "StaticResolver",
    "UnsupportedModelError",
    "bento_model_ids",
    "load_python_model",
    "parse_model_id",
    "pool_for_workspace",
    "predictor_for",
    "request_prediction",
    "server_launch",
    "tracking_store_reachable",
]
