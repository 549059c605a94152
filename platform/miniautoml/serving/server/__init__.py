"""The prediction server's plain code, imported by `bentos/service.py` and carried by every bento.

One module per concern:
  resolver       model id -> MLflow run / registry version, or a bento's one model; the loader
  predictors     loaded model -> predict_texts(texts, top_k): our models' fast path, a pyfunc
                 adapter for any other MLflow model, 422 for one that cannot take text
  pool           the bounded cache of loaded models, aliases followed (`ModelPool`)
  bodies         request and response bodies, `parse_request`
  answers        batch grouping and replies (`Answers`)
  middleware     the API-key check, the request-size limit, the OpenAPI document route
  bentoml_io     BentoML IO descriptors, service config, OpenAPI additions
  worker         per-worker metrics and GC tuning
(bodies, answers, middleware, bentoml_io and worker import pydantic, starlette or bentoml: only
the service imports them.)
"""

from miniautoml.serving.server.pool import AliasChange, LoadedModel, ModelPool, ServedModel, pool_for_workspace
from miniautoml.serving.server.predictors import Predictor, PyfuncPredictor, UnsupportedModelError, predictor_for
from miniautoml.serving.server.resolver import (
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
    "AliasChange",
    "LoadedModel",
    "Loader",
    "MlflowResolver",
    "ModelPool",
    "ModelSource",
    "Predictor",
    "PyfuncPredictor",
    "PythonModel",
    "Resolver",
    "ServedModel",
    "StaticResolver",
    "UnsupportedModelError",
    "bento_model_ids",
    "load_python_model",
    "pool_for_workspace",
    "predictor_for",
    "tracking_store_reachable",
]
