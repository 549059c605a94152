"""MiniAutoML prediction service: the book's `Predict(runId, document)` on BentoML 1.4.

Two ways to run it:
- from the repository (`miniautoml serve`, or `bentoml serve service:PredictionService` in
  `bentos/`): any model the workspace's MLflow knows, by run id, NAME@ALIAS or NAME/VERSION,
  fetched on first use into a bounded cache (`miniautoml.server.ModelPool`);
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
Any MLflow pyfunc model is served: ours through their fast `predict_texts`, any other through
`pyfunc.predict` with the documents as its signature's string input (`miniautoml.serving.server.predictors`);
its `scores` are `{}` unless its output is label -> probability columns. A model whose signature
cannot take text answers 422 naming its signature.
model_name/model_version name the registered version the answering run is (null if none), by
whichever id the model was asked for. Errors are one line, `{"error": message}`: 400 malformed
JSON / wrong type / missing or empty field / bad model id (the message names the field),
401 no or a wrong API key (with MINIAUTOML_API_KEYS_FILE: every route but /livez, /readyz,
/docs.json needs `Authorization: Bearer <key>`), 403 a run id that is no registered version
(MINIAUTOML_REGISTERED_ONLY=1), 404 unknown model, 422 model cannot take text, 413 body, document or batch too large, 503 overloaded, 504 timed out.

This file declares the service; what it does is plain code in `miniautoml.serving` (bodies,
answers, middleware, bentoml_io, worker) and, for BentoML's internals, `miniautoml.compat.bentoml`. Settings come from the environment:
`miniautoml.serving.ServingOptions.from_env`.
"""

from __future__ import annotations

import logging
import os

import bentoml
from pydantic import BaseModel
from starlette.responses import Response

from miniautoml import serving
from miniautoml.compat import bentoml as compat_bentoml
from miniautoml.serving import auth, server
from miniautoml.serving.server import bentoml_io, bodies, middleware, worker
from miniautoml.redact import redact_uri
from miniautoml.serving.server.answers import Answers, Reply

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in server logs
log = logging.getLogger("miniautoml.bentos.service")
OPTIONS = serving.ServingOptions.from_env()
REQUESTS = bodies.request_models(OPTIONS)
# A missing, unreadable or empty keys file stops the server here, before it listens.
API_KEYS = auth.ApiKeys(OPTIONS.api_keys_file) if OPTIONS.api_keys_file else None
if OPTIONS.patch_timeout_timers:
    compat_bentoml.cancel_timeout_timers()
if OPTIONS.batching and OPTIONS.batch_wait_patch:
    compat_bentoml.free_lone_waits()


class ServiceArgs(BaseModel):
    """Bento arguments (`bentoml build/serve --arg model=...`), set by `miniautoml bento build`."""

    model: str = ""  # BentoML model tag of the one model a bento serves; empty = MLflow registry


ARGS = bentoml.use_arguments(ServiceArgs)


@bentoml.service(**bentoml_io.service_config(OPTIONS))
class PredictionService:
    if ARGS.model:  # a bento: the BentoML model is part of the bento, resolved at start-up
        bento_model = bentoml.models.BentoModel(ARGS.model)

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)  # one worker = one core; one thread is as fast as two here
        metrics = worker.metrics()
        if ARGS.model:
            self.pool = self._bento_pool()
        else:
            from miniautoml.config import load_settings

            self.settings = load_settings()
            self.pool = server.pool_for_workspace(
                self.settings,
                OPTIONS,
                on_load=self._loaded,
                on_alias_change=lambda c: metrics.alias_swaps.labels(model_id=c.model_id).inc(),
            )
            if not self.pool.ready():  # also imports MLflow's store now, before the GC freeze
                log.warning("tracking store %s not reachable yet; /readyz says 503", redact_uri(self.settings.tracking_uri))
        for model_id in OPTIONS.preload:
            try:
                self.pool.get(model_id)
            except Exception as exc:  # a bad preload id must not keep the server down
                log.warning("preload of %s failed: %s", model_id, exc)
        self.pool.start_refresher()
        self.answers = Answers(self.pool)
        worker.tune_gc(OPTIONS)
        worker.observe_gc_pauses(metrics.gc_pause)

    def _loaded(self, model: server.LoadedModel) -> None:
        worker.metrics().loads.labels(run_id=model.run_id).inc()
        worker.tune_gc(OPTIONS)  # the first load imports MLflow's pyfunc machinery: freeze that too

    def _bento_pool(self) -> server.ModelPool:
        stored = self.bento_model  # bentoml.Model in the bento's model store
        labels = dict(stored.info.labels)
        version = labels.get("registered_version") or ""
        source = server.ModelSource(
            run_id=labels["run_id"],
            model_uri=str(stored.tag),
            name=labels.get("registered_name") or None,
            version=int(version) if version.isdigit() else None,
            dataset_id=labels.get("dataset_id") or None,
            version_hash=labels.get("version_hash") or None,
        )
        resolver = server.StaticResolver(source, server.bento_model_ids(source, labels.get("model_id")))
        pool = server.ModelPool(
            resolver,
            loader=lambda source: server.predictor_for(bentoml.mlflow.load_model(stored), source.run_id),
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

    @bentoml.api(
        route="/predict",
        input_spec=bentoml_io.predict_input(REQUESTS.predict),
        output_spec=bentoml_io.PredictOutput,
        batchable=OPTIONS.batching,
        max_batch_size=OPTIONS.max_batch_size,
        max_latency_ms=OPTIONS.max_latency_ms,
    )
    async def predict(self, requests: list[bodies.ModelRequest | bodies.InvalidRequest]) -> list[Reply]:
        """Classify one document with the model `model_id` names (run id, NAME@ALIAS, NAME/VERSION)."""
        return await self.answers.predict(requests)

    @bentoml.api(
        route="/predict_batch",
        input_spec=bentoml_io.batch_input(REQUESTS.batch),
        output_spec=bentoml_io.BatchOutput,
    )
    async def predict_batch(self, request: bodies.ModelRequest | bodies.InvalidRequest) -> Response:
        """Classify many documents with one model, in order."""
        return (await self.answers.predict_batch(request)).response()


def openapi_document() -> dict:
    """The service's OpenAPI document: BentoML's, plus what it cannot declare."""
    return bentoml_io.complete_openapi(
        PredictionService.openapi_spec.asdict(),
        api_keys=API_KEYS is not None,
        registered_only=OPTIONS.registered_only and not ARGS.model,
    )


if API_KEYS is not None:  # first: outermost, so no body is read for a request without a key
    PredictionService.add_asgi_middleware(middleware.BearerAuth, keys=API_KEYS)
PredictionService.add_asgi_middleware(middleware.RequestSizeLimit, max_bytes=OPTIONS.max_request_bytes)
PredictionService.add_asgi_middleware(middleware.OpenAPIDocument, document=openapi_document)
