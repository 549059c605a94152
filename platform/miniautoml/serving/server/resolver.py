"""Where a model id leads: an MLflow run or registry version (or a bento's one model), and its loader.

Every form of model id ends at a run id, the key of the model pool's cache. `MlflowResolver`
asks the workspace's tracking store; `StaticResolver` is a bento's, which knows one model only.
`load_python_model` loads what a `ModelSource` names through MLflow's pyfunc flavour, as a predictor
(`miniautoml.serving.server.predictors`: our models' fast path, or the pyfunc adapter of any other model).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from miniautoml.errors import NotFoundError, UserInputError
from miniautoml.model_ref import ModelRef
from miniautoml.serving.server.predictors import Predictor, predictor_for

if TYPE_CHECKING:
    from miniautoml.config import Settings
    from miniautoml.registry import ModelVersionInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Where a model id leads: the run, the URI to load, and the registry entry if any."""

    run_id: str
    model_uri: str
    name: str | None = None  # registered model name (alias / version ids)
    version: int | None = None
    dataset_id: str | None = None
    version_hash: str | None = None


PythonModel = Predictor  # what a loader returns: `predict_texts(texts, top_k)`, for every kind of model


class Resolver(Protocol):
    def resolve(self, ref: ModelRef) -> ModelSource: ...

    def ping(self) -> bool: ...


Loader = Callable[[ModelSource], PythonModel]


class NotRegisteredError(NotFoundError):
    """A run id that is no registered model version, asked of a registered-only server (403)."""


class MlflowResolver:
    """Model ids -> MLflow runs and registry versions of one workspace."""

    def __init__(self, settings: "Settings", *, registered_only: bool = False) -> None:
        self.settings = settings
        self.registered_only = registered_only  # run ids only when some registered version is the run

    def resolve(self, ref: ModelRef) -> ModelSource:
        from miniautoml import registry, runs

        if ref.kind == "run":
            assert ref.run_id is not None
            try:
                run = runs.get_run(self.settings, ref.run_id)
            except NotFoundError:
                raise NotFoundError(f"model {ref.text!r} not found: no such run") from None
            tags = run.data.tags
            registered = self._registered_version(ref.run_id)
            if registered is None and self.registered_only:
                raise NotRegisteredError(
                    f"run {ref.run_id} is not a registered model version; "
                    "this service serves registered models only (--registered-only)"
                )
            return ModelSource(
                run_id=ref.run_id,
                model_uri=f"runs:/{ref.run_id}/model",
                name=registered.name if registered else None,
                version=int(registered.version) if registered else None,
                dataset_id=tags.get("dataset_id") or None,
                version_hash=tags.get("version_hash") or None,
            )
        try:
            info = registry.get_version(self.settings, ref)
        except NotFoundError as exc:
            raise NotFoundError(f"model {ref.text!r} not found: {exc}") from None
        except UserInputError as exc:
            raise NotFoundError(f"model {ref.text!r} not found: {exc}") from None
        if not info.run_id:
            raise NotFoundError(f"model {ref.text!r}: version {info.version} has no run id")
        return ModelSource(
            run_id=info.run_id,
            model_uri=f"runs:/{info.run_id}/model",
            name=info.name,
            version=int(info.version),
            dataset_id=info.dataset_id,
            version_hash=info.version_hash,
        )

    def _registered_version(self, run_id: str) -> "ModelVersionInfo | None":
        """The registry version that run `run_id` is, if any: the first registered when several."""
        from miniautoml import registry

        versions = [v for v in registry.versions_of_run(self.settings, run_id) if v.status != "FAILED_REGISTRATION"]
        if not versions:
            return None
        return min(versions, key=lambda v: (v.created_at or "", v.name, int(v.version)))

    def ping(self) -> bool:
        """Whether the tracking store answers now (quickly: readiness probes call this)."""
        return tracking_store_reachable(self.settings)


def tracking_store_reachable(settings: "Settings", timeout: float = 2.0) -> bool:
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False
    if uri.startswith("sqlite:///") and not os.path.isfile(uri.removeprefix("sqlite:///")):
        return False  # MLflow would create an empty store; a probe must not
    try:
        from miniautoml.adapters import mlflow as mlflow_adapter

        mlflow_adapter.client(settings).search_experiments(max_results=1)
        return True
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        log.warning("tracking store %s not reachable: %s", uri, exc)
        return False


class StaticResolver:
    """The resolver of a bento: exactly one model, answering to the ids it was built from."""

    def __init__(self, source: ModelSource, ids: Sequence[str]) -> None:
        self.source = source
        self.ids = {i for i in ids if i}

    def resolve(self, ref: ModelRef) -> ModelSource:
        if ref.text in self.ids or ref.run_id == self.source.run_id:
            return self.source  # by run id too: the run is the registered version it was built from
        served = ", ".join(sorted(self.ids | {self.source.run_id}))
        raise NotFoundError(f"model {ref.text!r} not found: this bento serves only {served}")

    def ping(self) -> bool:
        return True


def bento_model_ids(source: ModelSource, built_from: str | None = None) -> list[str]:
    """The model ids a bento of `source` answers to: its run id, NAME/VERSION, the id it was built from."""
    ids = [source.run_id]
    if source.name and source.version is not None:
        ids.append(str(ModelRef.of_version(source.name, source.version)))
    if built_from:
        ids.append(built_from)
    return ids


def load_python_model(source: ModelSource) -> PythonModel:
    """The predictor of the MLflow pyfunc model `source` names: our models' own `predict_texts`
    (the fast path), any other pyfunc model through its adapter (`predictors.predictor_for`)."""
    from miniautoml.adapters import mlflow as mlflow_adapter

    try:
        model = mlflow_adapter.load_pyfunc(source.model_uri, missing=f"run {source.run_id} has no model at {source.model_uri}")
    except OSError as exc:  # artifact files missing on disk
        raise NotFoundError(f"run {source.run_id}: model files not found ({exc})") from None
    return predictor_for(model, source.run_id)
