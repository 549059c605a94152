"""The model pool: model ids -> loaded models, a bounded LRU cache keyed by run id, aliases followed.

An alias and the run id of the version it points at share one loaded model. `ModelPool` is used
by the BentoML service in `bentos/service.py` (and by the serving benchmark); it never prints and
knows nothing of HTTP. Loading is blocking (MLflow download + torch load), so an async caller
asks `peek()` first (a dictionary look-up) and calls `get()` in a worker thread only on a miss.
Concurrent first requests for one model load it once (a lock per run id). An alias moved to
another version is noticed by `refresh_aliases()` (a background thread calls it every
`alias_refresh_seconds`): the new version is loaded *before* the alias is switched, so requests
never wait for, or fail on, a swap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from miniautoml.errors import MiniAutoMLError, NotFoundError, UserInputError
from miniautoml.model_ref import ModelRef
from miniautoml.serving.options import ServingOptions
from miniautoml.serving.server.resolver import Loader, MlflowResolver, ModelSource, PythonModel, Resolver, load_python_model

if TYPE_CHECKING:
    from miniautoml.config import Settings

log = logging.getLogger(__name__)


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
    """What answers a model id now: the loaded model and where the id led (run, registered name
    and version)."""

    model: LoadedModel
    source: ModelSource

    @property
    def run_id(self) -> str:
        return self.model.run_id

    @property
    def name(self) -> str | None:
        return self.source.name

    @property
    def version(self) -> int | None:
        return self.source.version


@dataclass
class _RefEntry:
    ref: ModelRef
    source: ModelSource  # what `ref` resolved to


@dataclass(frozen=True)
class AliasChange:
    model_id: str
    old: ModelSource
    new: ModelSource | None  # None: the alias (or model) was deleted

    @property
    def old_run_id(self) -> str:
        return self.old.run_id

    @property
    def new_run_id(self) -> str | None:
        return self.new.run_id if self.new else None


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

    def peek(self, model_id: str | ModelRef) -> ServedModel | None:
        """The model answering `model_id` if it is loaded and its id resolved, else None."""
        key = model_id.text if isinstance(model_id, ModelRef) else model_id
        with self._lock:
            entry = self._refs.get(key)
            if entry is not None:
                loaded = self._models.get(entry.source.run_id)
                if loaded is not None:
                    self._models.move_to_end(entry.source.run_id)
                    return ServedModel(loaded, entry.source)
            return None

    # -- the slow path: resolve and load ----------------------------------------------------

    def get(self, model_id: str | ModelRef) -> ServedModel:
        """The model answering `model_id` (text, or already parsed), resolving and loading it if
        needed (blocking).

        Raises UserInputError for a malformed id, NotFoundError for an unknown one.
        """
        served = self.peek(model_id)
        if served is not None:
            return served
        key = model_id.text if isinstance(model_id, ModelRef) else model_id
        now = time.monotonic()
        with self._lock:
            missing = self._missing.get(key)
        if missing is not None and missing[0] > now:
            raise type(missing[1])(str(missing[1]))  # a fresh exception: no growing traceback
        try:
            ref = model_id if isinstance(model_id, ModelRef) else ModelRef.parse(model_id)
            with self._lock:
                entry = self._refs.get(key)
            # resolved before, model evicted since: reload the same run
            source = entry.source if entry is not None else self.resolver.resolve(ref)
            loaded = self._load(source)
        except (NotFoundError, UserInputError) as exc:
            self._remember_missing(key, exc)
            raise
        with self._lock:
            self._refs[key] = _RefEntry(ref, source)
            self._refs.move_to_end(key)
            while len(self._refs) > self.max_refs:
                self._refs.popitem(last=False)
            self._missing.pop(key, None)
        return ServedModel(loaded, source)

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

    def _load(self, source: ModelSource) -> LoadedModel:
        """The loaded model of `source`'s run, loading it once however many threads ask at once."""
        run_id = source.run_id
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
                changes.append(AliasChange(model_id, entry.source, None))
                continue
            except Exception as exc:  # tracking store down: keep serving what we have
                log.warning("could not refresh alias %s: %s", model_id, exc)
                continue
            old = entry.source
            if (source.run_id, source.version, source.name) == (old.run_id, old.version, old.name):
                continue
            try:
                self._load(source)  # load first: requests keep the old model
            except Exception as exc:
                log.warning("alias %s moved to run %s, which failed to load: %s", model_id, source.run_id, exc)
                continue
            with self._lock:
                if self._refs.get(model_id) is entry:
                    self._refs[model_id] = _RefEntry(entry.ref, source)
                self.alias_swaps += 1
            log.info(
                "alias %s: run %s (v%s) -> run %s (v%s)",
                model_id, old.run_id, old.version, source.run_id, source.version,
            )
            changes.append(AliasChange(model_id, old, source))
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
                "ids": {
                    k: {"run_id": e.source.run_id, "name": e.source.name, "version": e.source.version}
                    for k, e in self._refs.items()
                },
                "capacity": self.capacity,
                "alias_swaps": self.alias_swaps,
            }


def pool_for_workspace(settings: "Settings", options: ServingOptions, **kwargs: Any) -> ModelPool:
    """The pool of a registry-backed prediction server of `settings`' workspace."""
    return ModelPool(
        MlflowResolver(settings, registered_only=options.registered_only),
        capacity=options.cache_size,
        alias_refresh_seconds=options.alias_refresh_seconds,
        not_found_ttl_seconds=options.not_found_ttl_seconds,
        **kwargs,
    )

