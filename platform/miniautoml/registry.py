"""The model registry (MLflow): versions per trained job, aliases instead of stages.

A successful training job adds a version of its `--model-name`, tagged with the run (= job, =
model id), the dataset version it learned from and its algorithm. `show_model`/`list_models`
give each version's algorithm (the version tag `algorithm`, else the run's `miniautoml.algorithm`
tag, else the default), its lineage (run, dataset, version hash) and its run's test metrics. `promote` points an alias (e.g. `champion`)
at a version; serving resolves `models:/NAME@ALIAS`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from miniautoml.config import Settings
from miniautoml.contract import tags as run_tags
from miniautoml.errors import NotFoundError, UserInputError
from miniautoml.model_ref import ModelRef

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

_ALIAS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,254}$")


@dataclass
class ModelVersionInfo:
    name: str
    version: str
    run_id: str | None
    status: str
    source: str | None
    aliases: list[str]
    created_at: str | None
    dataset_id: str | None
    version_hash: str | None
    algorithm: str | None = None  # filled from the run when the version has no `algorithm` tag
    metrics: dict[str, float] = field(default_factory=dict)  # the run's test/val metrics
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass
class RegisteredModelInfo:
    name: str
    description: str
    aliases: dict[str, str]  # alias -> version
    latest_version: str | None
    created_at: str | None
    updated_at: str | None
    tags: dict[str, str] = field(default_factory=dict)
    versions: list[ModelVersionInfo] | None = None  # newest first


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def _client(settings: Settings) -> "MlflowClient":
    from miniautoml.adapters import mlflow as mlflow_adapter

    return mlflow_adapter.client(settings)


def _version_info(mv: "ModelVersion", model_aliases: dict[str, str]) -> ModelVersionInfo:
    """`model_aliases` (alias -> version, the registered model's map) is the one source of a
    version's aliases: `search_model_versions` returns every version with `aliases=[]`."""
    tags = dict(mv.tags or {})
    return ModelVersionInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id or tags.get(run_tags.VERSION_RUN_ID),
        status=mv.status,
        source=mv.source,
        aliases=sorted(alias for alias, version in model_aliases.items() if str(version) == str(mv.version)),
        created_at=_iso(mv.creation_timestamp),
        dataset_id=tags.get(run_tags.DATASET_ID) or None,
        version_hash=tags.get(run_tags.VERSION_HASH) or None,
        algorithm=tags.get(ALGORITHM_TAG) or None,
        tags=tags,
    )


ALGORITHM_TAG = run_tags.VERSION_ALGORITHM  # on a model version, set by the trainer when it registers
RUN_ALGORITHM_TAG = "miniautoml.algorithm"  # on a job's run, set at submit
SUMMARY_METRICS = ("test_accuracy", "test_loss", "val_accuracy")


def _with_runs(client: "MlflowClient", infos: list[ModelVersionInfo]) -> list[ModelVersionInfo]:
    """Each version with its algorithm and its run's summary metrics (one run read per run)."""
    from miniautoml.algorithms import DEFAULT_ALGORITHM

    runs: dict[str, object] = {}
    for info in infos:
        run = None
        if info.run_id:
            if info.run_id not in runs:
                try:
                    runs[info.run_id] = client.get_run(info.run_id)
                except Exception:  # a deleted or foreign run: the version still shows
                    runs[info.run_id] = None
            run = runs[info.run_id]
        if run is not None:
            data = run.data  # type: ignore[attr-defined]
            info.metrics = {k: data.metrics[k] for k in SUMMARY_METRICS if k in data.metrics}
            info.algorithm = info.algorithm or data.tags.get(RUN_ALGORITHM_TAG) or data.params.get("algorithm") or None
        info.algorithm = info.algorithm or DEFAULT_ALGORITHM
    return infos


def _aliases(rm: "RegisteredModel") -> dict[str, str]:
    return {alias: str(version) for alias, version in sorted((rm.aliases or {}).items())}


def _model_info(rm: "RegisteredModel", versions: list[ModelVersionInfo] | None = None) -> RegisteredModelInfo:
    latest = None
    if versions:
        latest = max(versions, key=lambda v: int(v.version)).version
    elif rm.latest_versions:
        latest = str(max(int(v.version) for v in rm.latest_versions))
    return RegisteredModelInfo(
        name=rm.name,
        description=rm.description or "",
        aliases=_aliases(rm),
        latest_version=latest,
        created_at=_iso(rm.creation_timestamp),
        updated_at=_iso(rm.last_updated_timestamp),
        tags=dict(rm.tags or {}),
        versions=versions,
    )


def _get_model(client: "MlflowClient", name: str) -> "RegisteredModel":
    from miniautoml.adapters import mlflow as mlflow_adapter

    name = (name or "").strip()
    if not name:
        raise UserInputError("model name is empty")
    with mlflow_adapter.errors(not_found=f"model {name!r} not found in the registry"):
        return client.get_registered_model(name)


def _versions(client: "MlflowClient", name: str) -> list["ModelVersion"]:
    if "'" in name:
        raise UserInputError(f"model name {name!r}: quotes are not allowed")
    found: list[ModelVersion] = []
    token = None
    while True:
        page = client.search_model_versions(f"name = '{name}'", max_results=1000, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def list_models(settings: Settings) -> list[RegisteredModelInfo]:
    """Registered models, by name, each with its versions (newest first: algorithm, lineage, metrics)."""
    client = _client(settings)
    models: list[RegisteredModelInfo] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, order_by=["name ASC"], page_token=token)
        for rm in page:
            versions = _with_runs(client, [_version_info(mv, _aliases(rm)) for mv in _versions(client, rm.name)])
            models.append(_model_info(rm, sorted(versions, key=lambda v: -int(v.version))))
        token = page.token
        if not token:
            return models


def show_model(settings: Settings, name: str) -> RegisteredModelInfo:
    """A registered model with all its versions (newest first)."""
    client = _client(settings)
    rm = _get_model(client, name)
    aliases = _aliases(rm)
    versions = sorted((_version_info(mv, aliases) for mv in _versions(client, rm.name)), key=lambda v: -int(v.version))
    return _model_info(rm, _with_runs(client, versions))


def get_version(settings: Settings, ref: ModelRef) -> ModelVersionInfo:
    """The version `ref` names: `NAME/VERSION` or `NAME@ALIAS` (`ModelRef.in_model` makes one of
    the CLI's NAME and VERSION|ALIAS)."""
    from miniautoml.adapters import mlflow as mlflow_adapter

    if ref.kind == "run" or ref.name is None:
        raise UserInputError(f"model {ref.text!r}: expected NAME/VERSION or NAME@ALIAS, not a run id")
    client = _client(settings)
    rm = _get_model(client, ref.name)
    known = ", ".join(f"@{a}" for a in sorted(rm.aliases or {})) or "none"
    what = "version" if ref.kind == "version" else "alias"
    missing = f"model {rm.name!r} has no {what} {ref.selector!r} (aliases: {known})"
    with mlflow_adapter.errors(not_found=missing):
        if ref.kind == "version":
            mv = client.get_model_version(rm.name, ref.selector)
            return _with_runs(client, [_version_info(mv, _aliases(rm))])[0]
        if ref.alias in (rm.aliases or {}):
            mv = client.get_model_version_by_alias(rm.name, ref.selector)
            return _with_runs(client, [_version_info(mv, _aliases(rm))])[0]
    raise NotFoundError(missing)


def check_alias(alias: str) -> str:
    """The alias without a leading '@'; UserInputError for one MLflow would refuse."""
    alias = (alias or "").strip().removeprefix("@")
    if not _ALIAS_RE.match(alias) or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise UserInputError(
            f"alias {alias!r}: use letters, digits, '_' or '-', starting with a letter or '_' "
            "('latest' and 'v<number>' are reserved)"
        )
    return alias


def register_run_model(settings: Settings, run_id: str, name: str, tags: dict[str, str]) -> ModelVersionInfo:
    """Register the model run `run_id` logged (`runs:/ID/model`) as a new version of `name`,
    tagged with `tags`, once it is ready: for a run whose trainer registered nothing (a sweep's
    trials; only the best becomes a version)."""
    from miniautoml.adapters import mlflow as mlflow_adapter

    client = _client(settings)
    outputs = client.get_run(run_id).outputs
    logged = outputs.model_outputs if outputs else []  # MLflow 3: the run's logged model, by id
    uri = f"models:/{logged[-1].model_id}" if logged else f"runs:/{run_id}/model"
    version = mlflow_adapter.register_model(settings, uri, name, tags)
    return _version_info(client.get_model_version(name, version), _aliases(client.get_registered_model(name)))


def promote(settings: Settings, version: ModelRef, alias: str) -> ModelVersionInfo:
    """Point `alias` at `version` (a `NAME/VERSION` ref), moving it from any other version."""
    from miniautoml.adapters import mlflow as mlflow_adapter

    alias = check_alias(alias)
    if version.kind != "version":
        raise UserInputError(f"model {version.text!r}: promote a version number (NAME/1, NAME/2, ...)")
    target = get_version(settings, version)
    client = _client(settings)
    with mlflow_adapter.errors(invalid=f"alias {alias!r}"):
        client.set_registered_model_alias(target.name, alias, target.version)
    mv = client.get_model_version(target.name, target.version)
    return _version_info(mv, _aliases(client.get_registered_model(target.name)))


def versions_of_run(settings: Settings, run_id: str) -> list[ModelVersionInfo]:
    client = _client(settings)
    models: dict[str, dict[str, str]] = {}  # one registered-model read per name, for its aliases
    infos = []
    for mv in client.search_model_versions(f"run_id = '{run_id}'"):
        if mv.name not in models:
            models[mv.name] = _aliases(client.get_registered_model(mv.name))
        infos.append(_version_info(mv, models[mv.name]))
    return infos


def registered_version(
    settings: Settings, run_id: str, model_name: str, wait_seconds: float = 60.0
) -> ModelVersionInfo | None:
    """The version of `model_name` that run `run_id` registered (the trainer registers it and
    writes its lineage tags; see training_code/train.py), once it is no longer pending; None if
    the run registered none."""
    client = _client(settings)
    mine = [mv for mv in client.search_model_versions(f"run_id = '{run_id}'") if mv.name == model_name]
    if not mine:
        return None
    mv = max(mine, key=lambda v: int(v.version))
    deadline = time.monotonic() + wait_seconds
    while mv.status == "PENDING_REGISTRATION" and time.monotonic() < deadline:
        time.sleep(0.2)
        mv = client.get_model_version(model_name, mv.version)
    return _version_info(mv, _aliases(client.get_registered_model(model_name)))
