"""Settings of the prediction service: the MINIAUTOML_* environment knobs, read once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from miniautoml.errors import UserInputError


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
    patch_timeout_timers: bool = True  # MINIAUTOML_PATCH_TIMEOUT_TIMERS: see compat.bentoml
    batch_wait_patch: bool = True  # MINIAUTOML_BATCH_WAIT_PATCH: no slow lone client after a burst, see compat.bentoml
    api_keys_file: str = ""  # MINIAUTOML_API_KEYS_FILE: Bearer keys, one a line; empty = no keys asked
    registered_only: bool = False  # MINIAUTOML_REGISTERED_ONLY: run ids of registered versions only

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
            patch_timeout_timers=_env_flag(env, "MINIAUTOML_PATCH_TIMEOUT_TIMERS", d.patch_timeout_timers),
            batch_wait_patch=_env_flag(env, "MINIAUTOML_BATCH_WAIT_PATCH", d.batch_wait_patch),
            api_keys_file=env.get("MINIAUTOML_API_KEYS_FILE", "").strip(),
            registered_only=_env_flag(env, "MINIAUTOML_REGISTERED_ONLY", d.registered_only),
        )
