"""Prediction serving, in two halves that share only the model-id grammar, the knobs and the keys:

  server/        what runs inside `bentoml serve` (imported by `bentos/service.py`, carried by
                 every bento): model resolution, the model pool, predictors, request bodies,
                 replies, middleware, BentoML IO, per-worker tuning
  client/        what the CLI, the lab and the stack use outside it: the `bentoml serve` command
                 line (`server_launch`) and the HTTP client (`request_prediction`)
and, used by both:
  (the model-id grammar is `miniautoml.model_ref`: `ModelRef`, `MODEL_ID_PATTERN`)
  options        the MINIAUTOML_* knobs (`ServingOptions`): read by the server, checked by the launcher
  auth           API keys files and loopback hosts: checked by the server, and before it starts
A client imports nothing of `server/`, and the server nothing of `client/`; neither half imports
MLflow or BentoML at import time (the patches of BentoML's internals the service applies are in
`miniautoml.compat.bentoml`).
"""

from miniautoml.model_ref import MODEL_ID_HELP, MODEL_ID_PATTERN, SPACES, ModelRef
from miniautoml.serving.options import ServingOptions

__all__ = ["MODEL_ID_HELP", "MODEL_ID_PATTERN", "SPACES", "ModelRef", "ServingOptions"]
