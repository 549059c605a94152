"""The one MLflow boundary: configures MLflow for a workspace, owns the client, maps MLflow errors.

Services get a `Tracking` for their settings (`tracking(settings)`, built once per settings
object and cached) and run MLflow calls under `errors(...)`, which turns MLflow's exceptions into
ours (NotFoundError, UserInputError). Only this module, `compat.mlflow` (MLflow's internals) and
training_code (the MLflow-side code) import mlflow; tests/test_compat.py holds the platform to it.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miniautoml.compat import mlflow as compat_mlflow
from miniautoml.config import Settings
from miniautoml.environment import preserved_env
from miniautoml.errors import NotFoundError, UserInputError

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT = "miniautoml"
# MLflow 3's experiment kind: a model-training experiment (not GenAI). UIs that read it open such an
# experiment on its runs table; MLflow 3.17's UI reads the page's `workflowType` instead (runs_page).
EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
# What `mlflow run` imports: a warm runner imports them once, before forking jobs.
PROJECT_MODULES = ("mlflow.projects", "mlflow.projects.backend.local")
# What a client of a database store imports on its first call: a runner's supervisor imports it
# once, so each runner it forks starts serving at once (jobs/supervisor.py).
CLIENT_MODULES = ("mlflow.store.tracking.sqlalchemy_store",)
NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")
INVALID_CODE = "INVALID_PARAMETER_VALUE"


@dataclass(frozen=True)
class Tracking:
    """A workspace's MLflow: tracking and registry URIs, artifact root, S3 environment."""

    tracking_uri: str
    registry_uri: str
    artifact_root: str | None
    state_dir: Path
    s3_env: tuple[tuple[str, str], ...] = ()
    _client: list = field(default_factory=list, repr=False, compare=False)  # the one client, once made

    @classmethod
    def from_settings(cls, settings: Settings) -> "Tracking":
        return cls(
            tracking_uri=settings.tracking_uri,
            registry_uri=settings.tracking_uri,
            artifact_root=settings.artifact_root,
            state_dir=settings.state_dir,
            s3_env=tuple(sorted(settings.storage.s3_env().items())),
        )

    @property
    def client(self) -> "MlflowClient":
        if not self._client:
            from mlflow import MlflowClient

            self._client.append(MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri))
        return self._client[0]

    def activate(self) -> None:
        """Point this process's MLflow (fluent API, `runs:/` URIs, S3 artifact client) here.

        Done when the tracking is first made, and again only when the process switches between
        workspaces (see `tracking`)."""
        import mlflow

        global _active
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.environ.update(dict(self.s3_env))
        # MLflow also exports these URIs to os.environ for child processes. Left there, every later
        # load_settings() in this process (say, of another workspace) would read them back as the
        # user's choice; our children get the URI from Settings.tool_env() instead.
        with preserved_env("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.registry_uri)
        _active = self


_active: Tracking | None = None


@functools.lru_cache(maxsize=32)
def _tracking(settings: Settings) -> Tracking:
    return Tracking.from_settings(settings)


def tracking(settings: Settings) -> Tracking:
    """The workspace's MLflow, configured: once per settings, again only on a workspace switch."""
    found = _tracking(settings)
    if _active is not found:
        found.activate()
    return found


def configure(settings: Settings) -> None:
    """Point this process's MLflow (and its S3 artifact client) at the workspace's stores now:
    for MLflow's fluent API (`mlflow.start_run`, `runs:/` URIs), whatever set them since."""
    _tracking(settings).activate()


def client(settings: Settings) -> "MlflowClient":
    return tracking(settings).client


def reset_after_fork() -> None:
    """The one way a fork drops the MLflow client state it inherited (URIs, active run, pooled
    connections, our cached `Tracking`): MLflow then reads its URIs from the environment again and
    opens connections of its own. Outside the MLflow versions this was pinned on: CompatError."""
    global _active
    compat_mlflow.drop_client_state()
    _tracking.cache_clear()
    _active = None


def run_project(project_args: Mapping[str, Any], starter: compat_mlflow.Starter | None = None) -> int:
    """`mlflow run`'s body through the Projects API (`mlflow.projects.run(**project_args)`): 0, or
    1 with MLflow's message logged as `mlflow run` logs it. `starter` starts the entry-point
    commands it claims (compat.mlflow; MLflow's `bash -c` for the others)."""
    import mlflow.projects

    with compat_mlflow.entry_points_started_by(starter) if starter else nullcontext():
        try:
            mlflow.projects.run(**project_args)
        except mlflow.projects.ExecutionException as exc:
            logging.getLogger("mlflow.cli").error("=== %s ===", exc)
            return 1
    return 0


@contextmanager
def errors(not_found: str | None = None, invalid: str | None = None, *, invalid_is_not_found: bool = False) -> Iterator[None]:
    """MLflow's errors as ours, in one place: a missing resource -> NotFoundError(`not_found`)
    (also a malformed id with `invalid_is_not_found`); a rejected value -> UserInputError
    ("`invalid`: MLflow's reason"). Anything else propagates."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        code = exc.error_code
        missing = code in NOT_FOUND_CODES or (invalid_is_not_found and code == INVALID_CODE)
        if not_found is not None and missing:
            raise NotFoundError(not_found) from None
        if invalid is not None and code == INVALID_CODE:
            raise UserInputError(f"{invalid}: {exc.message}") from None
        raise


def set_tags(client: "MlflowClient", run_id: str, tags: Mapping[str, Any]) -> None:
    """Set several run tags in one request."""
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def run_view(include_deleted: bool = False) -> int:
    """The `run_view_type` of a search: active runs, or all with `include_deleted`."""
    from mlflow.entities import ViewType

    return ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY


def log_params(client: "MlflowClient", run_id: str, params: Mapping[str, str]) -> None:
    """Log several run params in one request."""
    from mlflow.entities import Param

    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])


def load_pyfunc(model_uri: str, missing: str) -> Any:
    """The MLflow pyfunc model at `model_uri` (for this process's MLflow: see `configure`);
    NotFoundError(`missing`) when there is none. OSError when its files are missing on disk."""
    import mlflow.pyfunc

    with errors(not_found=missing):
        return mlflow.pyfunc.load_model(model_uri)


def register_model(settings: Settings, model_uri: str, name: str, tags: Mapping[str, str]) -> str:
    """Register the model at `model_uri` (`runs:/…`, `models:/…`) as a new version of `name`,
    tagged with `tags`, once it is ready; its version number."""
    import mlflow

    configure(settings)
    return str(mlflow.register_model(model_uri, name, tags=dict(tags)).version)


def ensure_experiment(settings: Settings, name: str = EXPERIMENT) -> str:
    """The experiment's id, creating it with the workspace's artifact root (SQLite needs one) and
    marked as a model-training experiment (an older one gets the mark too)."""
    c = client(settings)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:
            c.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
        return exp.experiment_id
    try:
        location = f"{settings.artifact_root}/{name}" if settings.artifact_root else None
        return c.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
    except Exception:  # another process created it between our look-up and create
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def runs_page(ui_url: str, experiment_id: str) -> str:
    """The MLflow UI's page of an experiment's runs table. MLflow 3.17 opens an experiment as a
    GenAI one (an empty traces dashboard) unless the page says `workflowType=machine_learning`."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"
