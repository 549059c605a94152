"""Parameter checks that run before anything heavy is imported, so a typo fails in a second."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miniautoml.errors import UserInputError

ALGORITHMS = ("intent-classification",)
MODELS = ("fasttext", "book")  # kept in step with model.MODELS (not imported: it pulls in torch)
OPTIMIZERS = ("adam", "sgd")


class ParamError(UserInputError):
    """A training parameter is invalid; the message names it and the accepted values."""


def is_set(value: Any) -> bool:
    """Empty strings mean "unset": MLproject parameters cannot be absent, only empty."""
    return value is not None and str(value).strip() != ""


def _number(cfg: Mapping[str, Any], key: str) -> float:
    value = cfg.get(key)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParamError(f"{key}={value!r}: expected a number") from None


def validate_params(cfg: Mapping[str, Any]) -> None:
    """Raise ParamError on the first invalid parameter of a training config."""
    algorithm = cfg.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise ParamError(f"algorithm={algorithm!r}: unknown; expected one of {', '.join(ALGORITHMS)}")
    if _number(cfg, "lr") <= 0:
        raise ParamError(f"lr={cfg.get('lr')}: must be > 0")
    for key in ("epochs", "batch_size"):
        value = _number(cfg, key)
        if value <= 0 or value != int(value):
            raise ParamError(f"{key}={cfg.get(key)}: must be a positive integer")
    if _number(cfg, "patience") < 0:
        raise ParamError(f"patience={cfg.get('patience')}: must be >= 0 (0 = no early stopping)")
    model = cfg.get("model") or {}
    if model.get("name") not in MODELS:
        raise ParamError(f"model={model.get('name')!r}: unknown; expected one of {', '.join(MODELS)}")
    optimizer = cfg.get("optimizer") or {}
    if optimizer.get("name") not in OPTIMIZERS:
        raise ParamError(f"optimizer={optimizer.get('name')!r}: unknown; expected one of {', '.join(OPTIMIZERS)}")
    data = cfg.get("data") or {}
    val, test = _number(data, "val_fraction"), _number(data, "test_fraction")
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ParamError(f"data.val_fraction={val}, data.test_fraction={test}: each in (0, 1), sum < 1")
    has_id, has_hash = is_set(cfg.get("dataset_id")), is_set(cfg.get("version_hash"))
    if has_id != has_hash:
        raise ParamError("dataset_id and version_hash go together: give both, or data.path instead")
    if not has_id and not is_set(data.get("path")):
        raise ParamError("no dataset: give dataset_id and version_hash, or data.path=<csv file>")


def validate_label_count(labels_present: int, name: str) -> None:
    if labels_present < 2:
        raise ParamError(f"dataset {name}: {labels_present} label(s) in its examples; need at least 2")
