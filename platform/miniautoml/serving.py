"""Prediction service core: which model a model id names, and a bounded cache of loaded models.

The book's prediction service answers `Predict(runId, document)`. Here a model id is one of
  <run id>           32 hex characters: the MLflow run that logged `runs:/<run id>/model`
  <name>@<alias>     a registered model's alias, followed: re-resolved every refresh interval
  <name>/<version>   a registered model version (immutable)
Every form ends at a run id, the key of the model cache: an alias and the run id of the version it
points at share one loaded model.

`ModelPool` is used by the BentoML service in `bentos/service.py` (and by the serving benchmark);
it never prints and knows nothing of HTTP. Loading is blocking (MLflow download + torch load), so
an async caller asks `peek()` first (a dictionary look-up) and calls `get()` in a worker thread
only on a miss. Concurrent first requests for one model load it once (a lock per run id).
An alias moved to another version is noticed by `refresh_aliases()` (a background thread calls
it every `alias_refresh_seconds`): the new version is loaded *before* the alias is switched, so
requests never wait for, or fail on, a swap.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from miniautoml.errors import MiniAutoMLError, NotFoundError, UserInputError

if TYPE_CHECKING:
    from miniautoml.config import Settings
    from miniautoml.registry import ModelVersionInfo

log = logging.getLogger(__name__)

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# The characters str.strip() removes (str.isspace), spelled out for regular expressions: `\s`
# means other sets in other engines (JSON-schema validators, test-data generators).
SPACES = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The model id grammar, written once: `parse_model_id` matches it and the prediction service
# declares it as the JSON-schema `pattern` of `model_id` (surrounding whitespace is ignored).
# A name has no '@' or '/'; a version is 1..999999999 (what the registry's integer column holds).
_MODEL_ID_FORMS = (
    r"(?P<run>[0-9a-f]{32})"
    rf"|(?P<alias_name>[^{SPACES}@/][^@/]*)@(?P<alias>[A-Za-z0-9_\-]+)"
    rf"|(?P<version_name>[^{SPACES}@/][^@/]*)/(?P<version>0*[1-9][0-9]{{0,8}})"
)
_MODEL_ID_RE = re.compile(_MODEL_ID_FORMS)
MODEL_ID_PATTERN = rf"^[{SPACES}]*(?:{re.sub(r'[?]P<[a-z_]+>', '?:', _MODEL_ID_FORMS)})[{SPACES}]*$"
MODEL_ID_HELP = "expected a run id (32 hex characters), NAME@ALIAS or NAME/VERSION"


# --------------------------------------------------------------------------------------------
# Settings of the prediction service (environment knobs, read by the service at start-up)
# --------------------------------------------------------------------------------------------


def _env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserInputError(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise UserInputError(f"{name}={value}: must be at least {minimum}")
    return value


def _env_float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UserInputError(f"{name}={raw!r}: expected a number") from None
    if value < minimum:
        raise UserInputError(f"{name}={value}: must be at least {minimum}")
    return value


def _env_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise UserInputError(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")


@dataclass(frozen=True)
class ServingOptions:
    """Knobs of the prediction service; `from_env()` documents the variable of each."""

    cache_size: int = 4  # MINIAUTOML_MODEL_CACHE_SIZE: loaded models kept per worker (LRU)
    alias_refresh_seconds: float = 10.0  # MINIAUTOML_ALIAS_REFRESH_SECONDS: 0 = never re-resolve
    not_found_ttl_seconds: float = 2.0  # MINIAUTOML_NOT_FOUND_TTL_SECONDS: remember unknown ids
    max_document_chars: int = 10_000  # MINIAUTOML_MAX_DOCUMENT_CHARS: longer -> 413
    max_batch_documents: int = 1_000  # MINIAUTOML_MAX_BATCH_DOCUMENTS: /predict_batch -> 413
    max_request_bytes: int = 1_048_576  # MINIAUTOML_MAX_REQUEST_BYTES: any larger body -> 413
    max_top_k: int = 20  # MINIAUTOML_MAX_TOP_K: `top_k` above -> 400
    batching: bool = True  # MINIAUTOML_BATCHING: adaptive batching of /predict
    max_batch_size: int = 64  # MINIAUTOML_BATCH_MAX_SIZE: documents per batch
    max_latency_ms: int = 10_000  # MINIAUTOML_BATCH_MAX_LATENCY_MS: queued longer -> 503
    workers: int = 1  # MINIAUTOML_WORKERS: server processes (each loads its own models)
    request_timeout_seconds: float = 20.0  # MINIAUTOML_REQUEST_TIMEOUT_SECONDS -> 504
    access_log: bool = False  # MINIAUTOML_ACCESS_LOG: one log line per request
    trace_predictions: bool = False  # MINIAUTOML_TRACE_PREDICTIONS: OpenTelemetry spans
    gc_freeze: bool = True  # MINIAUTOML_GC_FREEZE: move start-up objects out of the GC's way
    gc_threshold: tuple[int, ...] = ()  # MINIAUTOML_GC_THRESHOLD: e.g. "20000,50,100"
    preload: tuple[str, ...] = ()  # MINIAUTOML_PRELOAD_MODELS: model ids loaded at start-up

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ServingOptions":
        env = os.environ if env is None else env
        raw_gc = env.get("MINIAUTOML_GC_THRESHOLD", "").strip()
        try:
            gc_threshold = tuple(int(x) for x in raw_gc.split(",")) if raw_gc else ()
        except ValueError:
            raise UserInputError(f"MINIAUTOML_GC_THRESHOLD={raw_gc!r}: expected integers like 20000,50,100") from None
        if len(gc_threshold) > 3:
            raise UserInputError(f"MINIAUTOML_GC_THRESHOLD={raw_gc!r}: at most three numbers")
        d = cls()
        return cls(
            cache_size=_env_int(env, "MINIAUTOML_MODEL_CACHE_SIZE", d.cache_size, 1),
            alias_refresh_seconds=_env_float(env, "MINIAUTOML_ALIAS_REFRESH_SECONDS", d.alias_refresh_seconds),
            not_found_ttl_seconds=_env_float(env, "MINIAUTOML_NOT_FOUND_TTL_SECONDS", d.not_found_ttl_seconds),
            max_document_chars=_env_int(env, "MINIAUTOML_MAX_DOCUMENT_CHARS", d.max_document_chars, 1),
            max_batch_documents=_env_int(env, "MINIAUTOML_MAX_BATCH_DOCUMENTS", d.max_batch_documents, 1),
            max_request_bytes=_env_int(env, "MINIAUTOML_MAX_REQUEST_BYTES", d.max_request_bytes, 256),
            max_top_k=_env_int(env, "MINIAUTOML_MAX_TOP_K", d.max_top_k, 1),
            batching=_env_flag(env, "MINIAUTOML_BATCHING", d.batching),
            max_batch_size=_env_int(env, "MINIAUTOML_BATCH_MAX_SIZE", d.max_batch_size, 2),
            max_latency_ms=_env_int(env, "MINIAUTOML_BATCH_MAX_LATENCY_MS", d.max_latency_ms, 1),
            workers=_env_int(env, "MINIAUTOML_WORKERS", d.workers, 1),
            request_timeout_seconds=_env_float(
                env, "MINIAUTOML_REQUEST_TIMEOUT_SECONDS", d.request_timeout_seconds, 0.001
            ),
            access_log=_env_flag(env, "MINIAUTOML_ACCESS_LOG", d.access_log),
            trace_predictions=_env_flag(env, "MINIAUTOML_TRACE_PREDICTIONS", d.trace_predictions),
            gc_freeze=_env_flag(env, "MINIAUTOML_GC_FREEZE", d.gc_freeze),
            gc_threshold=gc_threshold,
            preload=tuple(m.strip() for m in env.get("MINIAUTOML_PRELOAD_MODELS", "").split(",") if m.strip()),
        )


# --------------------------------------------------------------------------------------------
# Model ids
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """A parsed model id."""

    text: str
    kind: Literal["run", "alias", "version"]
    run_id: str | None = None
    name: str | None = None
    alias: str | None = None
    version: int | None = None


def parse_model_id(model_id: str) -> ModelRef:
    """`<run id>`, `NAME@ALIAS` or `NAME/VERSION`; anything else is a UserInputError."""
    text = (model_id or "").strip()
    if not text:
        raise UserInputError(f"model id is empty; {MODEL_ID_HELP}")
    found = _MODEL_ID_RE.fullmatch(text)
    if found is None:
        shown = text if len(text) <= 80 else text[:80] + "..."
        raise UserInputError(f"model id {shown!r}: {MODEL_ID_HELP}")
    if found["run"]:
        return ModelRef(text, "run", run_id=text)
    if found["alias"]:
        return ModelRef(text, "alias", name=found["alias_name"], alias=found["alias"])
    return ModelRef(text, "version", name=found["version_name"], version=int(found["version"]))


# --------------------------------------------------------------------------------------------
# Resolved and loaded models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """Where a model id leads: the run, the URI to load, and the registry entry if any."""

    run_id: str
    model_uri: str
    name: str | None = None  # registered model name (alias / version ids)
    version: int | None = None
    dataset_id: str | None = None
    version_hash: str | None = None


class PythonModel(Protocol):
    """The contract of `training_code.pyfunc.IntentClassifierModel` that serving relies on."""

    def predict_texts(self, texts: Sequence[str], top_k: int = 3) -> list[dict[str, Any]]: ...


@dataclass
class LoadedModel:
    run_id: str
    model: PythonModel
    model_uri: str
    load_seconds: float = 0.0
    loaded_at: float = field(default_factory=time.time)

    def predict(self, texts: Sequence[str], top_k: int = 3) -> list[dict[str, Any]]:
        return self.model.predict_texts(texts, top_k=top_k)


@dataclass(frozen=True)
class ServedModel:
    """What answers a model id now: the loaded model and its registered name and version, if any."""

    model: LoadedModel
    version: int | None
    name: str | None = None

    @property
    def run_id(self) -> str:
        return self.model.run_id


class Resolver(Protocol):
    def resolve(self, ref: ModelRef) -> ModelSource: ...

    def ping(self) -> bool: ...


Loader = Callable[[ModelSource], PythonModel]


class MlflowResolver:
    """Model ids -> MLflow runs and registry versions of one workspace."""

    def __init__(self, settings: "Settings") -> None:
        self.settings = settings

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
            return ModelSource(
                run_id=ref.run_id,
                model_uri=f"runs:/{ref.run_id}/model",
                name=registered.name if registered else None,
                version=int(registered.version) if registered else None,
                dataset_id=tags.get("dataset_id") or None,
                version_hash=tags.get("version_hash") or None,
            )
        assert ref.name is not None
        wanted = f"@{ref.alias}" if ref.kind == "alias" else str(ref.version)
        try:
            info = registry.get_version(self.settings, ref.name, wanted)
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


def load_python_model(source: ModelSource) -> PythonModel:
    """The unwrapped python model of an MLflow pyfunc model (its fast `predict_texts`)."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    try:
        pyfunc_model = mlflow.pyfunc.load_model(source.model_uri)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            raise NotFoundError(f"run {source.run_id} has no model at {source.model_uri}") from None
        raise
    except OSError as exc:  # artifact files missing on disk
        raise NotFoundError(f"run {source.run_id}: model files not found ({exc})") from None
    model = pyfunc_model.unwrap_python_model()
    if not callable(getattr(model, "predict_texts", None)):
        raise MiniAutoMLError(
            f"model of run {source.run_id} is a {type(model).__name__} without predict_texts(); "
            "it was not trained by training_code"
        )
    return model


# --------------------------------------------------------------------------------------------
# The pool
# --------------------------------------------------------------------------------------------


@dataclass
class _RefEntry:
    ref: ModelRef
    run_id: str
    version: int | None
    name: str | None = None  # registered model name of `version`


@dataclass(frozen=True)
class AliasChange:
    model_id: str
    old_run_id: str
    new_run_id: str | None  # None: the alias (or model) was deleted
    new_version: int | None


class ModelPool:
    """Model ids -> loaded models: an LRU cache of `capacity` models keyed by run id."""

    def __init__(
        self,
        resolver: Resolver,
        loader: Loader = load_python_model,
        *,
        capacity: int = 4,
        alias_refresh_seconds: float = 10.0,
        not_found_ttl_seconds: float = 2.0,
        max_refs: int = 1024,
        on_load: Callable[[LoadedModel], None] | None = None,
        on_alias_change: Callable[["AliasChange"], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.resolver = resolver
        self.loader = loader
        self.capacity = capacity
        self.alias_refresh_seconds = alias_refresh_seconds
        self.not_found_ttl_seconds = not_found_ttl_seconds
        self.max_refs = max_refs
        self.on_load = on_load
        self.on_alias_change = on_alias_change
        self.load_counts: Counter[str] = Counter()  # run id -> loads (tests, metrics)
        self.alias_swaps = 0
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._refs: OrderedDict[str, _RefEntry] = OrderedDict()  # model id text -> run id
        self._missing: dict[str, tuple[float, MiniAutoMLError]] = {}  # id -> (expiry, error)
        self._lock = threading.Lock()  # guards the dictionaries above; never held while loading
        self._load_locks: dict[str, threading.Lock] = {}
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    # -- the fast path: no I/O, safe on an event loop ------------------------------------------

    def peek(self, model_id: str) -> ServedModel | None:
        """The model answering `model_id` if it is loaded and its id resolved, else None."""
        with self._lock:
            entry = self._refs.get(model_id)
            if entry is not None:
                loaded = self._models.get(entry.run_id)
                if loaded is not None:
                    self._models.move_to_end(entry.run_id)
                    return ServedModel(loaded, entry.version, entry.name)
            return None

    # -- the slow path: resolve and load ----------------------------------------------------

    def get(self, model_id: str) -> ServedModel:
        """The model answering `model_id`, resolving and loading it if needed (blocking).

        Raises UserInputError for a malformed id, NotFoundError for an unknown one.
        """
        served = self.peek(model_id)
        if served is not None:
            return served
        now = time.monotonic()
        with self._lock:
            missing = self._missing.get(model_id)
        if missing is not None and missing[0] > now:
            raise type(missing[1])(str(missing[1]))  # a fresh exception: no growing traceback
        try:
            ref = parse_model_id(model_id)
            with self._lock:
                entry = self._refs.get(model_id)
            if entry is not None:  # resolved before, model evicted since: reload the same run
                source: ModelSource | None = None
                run_id, version, name = entry.run_id, entry.version, entry.name
            else:
                source = self.resolver.resolve(ref)
                run_id, version, name = source.run_id, source.version, source.name
            loaded = self._load(run_id, source)
        except (NotFoundError, UserInputError) as exc:
            self._remember_missing(model_id, exc)
            raise
        with self._lock:
            self._refs[model_id] = _RefEntry(ref, run_id, version, name)
            self._refs.move_to_end(model_id)
            while len(self._refs) > self.max_refs:
                self._refs.popitem(last=False)
            self._missing.pop(model_id, None)
        return ServedModel(loaded, version, name)

    def _remember_missing(self, model_id: str, exc: MiniAutoMLError) -> None:
        if self.not_found_ttl_seconds <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._missing) >= self.max_refs:
                self._missing = {k: v for k, v in self._missing.items() if v[0] > now}
                if len(self._missing) >= self.max_refs:
                    self._missing.clear()
            self._missing[model_id] = (now + self.not_found_ttl_seconds, exc)

    def _load(self, run_id: str, source: ModelSource | None) -> LoadedModel:
        """The loaded model of `run_id`, loading it once however many threads ask at once."""
        with self._lock:
            loaded = self._models.get(run_id)
            if loaded is not None:
                self._models.move_to_end(run_id)
                return loaded
            key_lock = self._load_locks.setdefault(run_id, threading.Lock())
        with key_lock:
            with self._lock:  # another thread may have loaded it while we waited
                loaded = self._models.get(run_id)
                if loaded is not None:
                    self._models.move_to_end(run_id)
                    return loaded
            if source is None:
                source = ModelSource(run_id=run_id, model_uri=f"runs:/{run_id}/model")
            started = time.perf_counter()
            model = self.loader(source)
            loaded = LoadedModel(
                run_id=run_id, model=model, model_uri=source.model_uri, load_seconds=time.perf_counter() - started
            )
            with self._lock:
                self._models[run_id] = loaded
                self._models.move_to_end(run_id)
                while len(self._models) > self.capacity:
                    evicted, _ = self._models.popitem(last=False)
                    log.info("model cache full (%d): evicted run %s", self.capacity, evicted)
                self.load_counts[run_id] += 1
                self._load_locks.pop(run_id, None)
        log.info("loaded model of run %s from %s in %.2fs", run_id, source.model_uri, loaded.load_seconds)
        if self.on_load is not None:
            self.on_load(loaded)
        return loaded

    # -- aliases ------------------------------------------------------------------------------

    def refresh_aliases(self) -> list[AliasChange]:
        """Re-resolve every alias id in use; load a moved alias's new model, then switch it.

        A deleted alias stops answering (404 on the next request). When the tracking store
        cannot be reached the alias keeps its current model.
        """
        with self._lock:
            aliases = [(k, e) for k, e in self._refs.items() if e.ref.kind == "alias"]
        changes: list[AliasChange] = []
        for model_id, entry in aliases:
            try:
                source = self.resolver.resolve(entry.ref)
            except NotFoundError as exc:
                with self._lock:
                    if self._refs.get(model_id) is entry:
                        del self._refs[model_id]
                log.warning("alias %s no longer resolves (%s); it stops answering", model_id, exc)
                changes.append(AliasChange(model_id, entry.run_id, None, None))
                continue
            except Exception as exc:  # tracking store down: keep serving what we have
                log.warning("could not refresh alias %s: %s", model_id, exc)
                continue
            if (source.run_id, source.version, source.name) == (entry.run_id, entry.version, entry.name):
                continue
            try:
                self._load(source.run_id, source)  # load first: requests keep the old model
            except Exception as exc:
                log.warning("alias %s moved to run %s, which failed to load: %s", model_id, source.run_id, exc)
                continue
            with self._lock:
                if self._refs.get(model_id) is entry:
                    self._refs[model_id] = _RefEntry(entry.ref, source.run_id, source.version, source.name)
                self.alias_swaps += 1
            log.info(
                "alias %s: run %s (v%s) -> run %s (v%s)",
                model_id, entry.run_id, entry.version, source.run_id, source.version,
            )
            changes.append(AliasChange(model_id, entry.run_id, source.run_id, source.version))
        if self.on_alias_change is not None:
            for change in changes:
                self.on_alias_change(change)
        return changes

    def start_refresher(self) -> None:
        """Refresh aliases every `alias_refresh_seconds` in a daemon thread (0 = never)."""
        if self.alias_refresh_seconds <= 0 or self._refresher is not None:
            return
        self._refresher = threading.Thread(target=self._refresh_loop, name="alias-refresher", daemon=True)
        self._refresher.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.alias_refresh_seconds):
            try:
                self.refresh_aliases()
            except Exception:  # never let the thread die
                log.exception("alias refresh failed")

    def close(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
            self._refresher = None

    # -- introspection ------------------------------------------------------------------------

    def ready(self) -> bool:
        return self.resolver.ping()

    def loaded_run_ids(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "models": [
                    {"run_id": m.run_id, "model_uri": m.model_uri, "load_seconds": round(m.load_seconds, 3)}
                    for m in self._models.values()
                ],
                "ids": {k: {"run_id": e.run_id, "name": e.name, "version": e.version} for k, e in self._refs.items()},
                "capacity": self.capacity,
                "alias_swaps": self.alias_swaps,
            }


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
        ids.append(f"{source.name}/{source.version}")
    if built_from:
        ids.append(built_from)
    return ids


def pool_for_workspace(settings: "Settings", options: ServingOptions, **kwargs: Any) -> ModelPool:
    """The pool of a registry-backed prediction server of `settings`' workspace."""
    return ModelPool(
        MlflowResolver(settings),
        capacity=options.cache_size,
        alias_refresh_seconds=options.alias_refresh_seconds,
        not_found_ttl_seconds=options.not_found_ttl_seconds,
        **kwargs,
    )


# --------------------------------------------------------------------------------------------
# Running and calling a prediction server
# --------------------------------------------------------------------------------------------


class ServerUnavailableError(MiniAutoMLError):
    """The prediction server could not be reached or failed; retry when it is back."""

    exit_code = 3


@dataclass(frozen=True)
class ServerLaunch:
    argv: list[str]
    env: dict[str, str]  # to add to the caller's environment
    cwd: str


def server_launch(
    settings: "Settings",
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    workers: int | None = None,
    bento: str | None = None,
) -> ServerLaunch:
    """How to run the prediction server: the registry service in `bentos/`, or a built bento."""
    from miniautoml.adapters import bentoml as bentoml_adapter
    from miniautoml.config import PROJECT_ROOT

    if not 0 < port < 65536:
        raise UserInputError(f"--port {port}: expected 1..65535")
    env = bentoml_adapter.env(settings)
    if workers is not None:
        if workers < 1:
            raise UserInputError(f"--workers {workers}: expected at least 1")
        env["MINIAUTOML_WORKERS"] = str(workers)
    ServingOptions.from_env({**os.environ, **env})  # a bad knob fails here, not in every worker
    bentos_dir = PROJECT_ROOT / "bentos"
    target = bento or "service:PredictionService"
    argv = bentoml_adapter.serve_command(target, host, port, working_dir=None if bento else bentos_dir)
    return ServerLaunch(argv=argv, env=env, cwd=str(bentos_dir))


def request_prediction(
    url: str, model_id: str, documents: Sequence[str], *, top_k: int = 3, timeout: float = 30.0
) -> dict[str, Any]:
    """POST one document to `url`/predict (several to /predict_batch); the JSON answer.

    HTTP errors become one-line errors: 404 NotFoundError, other 4xx UserInputError,
    5xx and connection failures ServerUnavailableError.
    """
    import json
    import urllib.error
    import urllib.request

    if not documents:
        raise UserInputError("no document given")
    base = url.rstrip("/")
    if len(documents) == 1:
        route, body = "/predict", {"model_id": model_id, "document": documents[0], "top_k": top_k}
    else:
        route, body = "/predict_batch", {"model_id": model_id, "documents": list(documents), "top_k": top_k}
    request = urllib.request.Request(
        base + route,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        message = _error_message(exc.read())
        if exc.code == 404:
            raise NotFoundError(message) from None
        if 400 <= exc.code < 500:
            raise UserInputError(f"{message} (HTTP {exc.code})") from None
        raise ServerUnavailableError(f"prediction server at {base}: HTTP {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerUnavailableError(f"prediction server at {base} not reachable: {reason}") from None


def _error_message(raw: bytes) -> str:
    """The `error` of a JSON error body (with pydantic's first detail), else the body's text."""
    import json

    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300] or "no details"
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if not isinstance(data, dict) or "error" not in data:
        return " ".join(text.split())[:300]
    message = str(data["error"])
    detail = data.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", []))
        message += f": {where + ': ' if where else ''}{first.get('msg', '')}"
    return message
