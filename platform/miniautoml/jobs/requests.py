"""A training job's request: validated completely at submit (algorithm, model name, dataset or
CSV files, documented typed parameters, the trainer's composed config), before any run exists."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from miniautoml import algorithms as algorithms_mod
from miniautoml.config import Settings
from miniautoml.errors import NotFoundError, UserInputError

if TYPE_CHECKING:
    from miniautoml.datasets.version_hash import VersionHash

DEFAULT_ALGORITHM = algorithms_mod.DEFAULT_ALGORITHM
# Training parameters the job request carries as MLproject parameters, not as -P overrides.
RESERVED_PARAMS = {
    "dataset_id": "--dataset",
    "version_hash": "--version-hash",
    "model_name": "--model-name",
    "data.path": "--data-path",
    "algorithm": "--algorithm",
}
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_PARAM_KEY_RE = re.compile(r"^(\+{1,2}|~)?[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*(@[A-Za-z0-9_.\-]+)?$")


@dataclass
class JobRequest:
    """What `submit` records on the job's run (tags) and the runner hands to `mlflow run`."""

    model_name: str
    algorithm: str = DEFAULT_ALGORITHM
    dataset_id: str = ""
    version_hash: VersionHash | None = None  # with dataset_id; None for CSV files (data_path)
    data_path: str = ""
    params: dict[str, str] = field(default_factory=dict)


# --- validation -------------------------------------------------------------------------------
def _check_params(params: dict[str, str]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in params.items():
        key = key.strip()
        if not _PARAM_KEY_RE.match(key):
            raise UserInputError(f"-P {key}={value}: {key!r} is not a parameter name (e.g. epochs, model.embed_dim)")
        bare = key.lstrip("+~")
        if bare in RESERVED_PARAMS:
            raise UserInputError(f"-P {key}=...: give {bare} with {RESERVED_PARAMS[bare]}, not -P")
        if "\n" in value or "\r" in value:
            raise UserInputError(f"-P {key}: the value spans lines")
        _check_documented(key, value)
        clean[key] = value
    return clean


def _check_documented(key: str, value: str) -> None:
    """Only the training parameters params/ declares, each with a value of its type: no Hydra
    `+key`/`~key`/`hydra.*` overrides, no NaN/inf (the trainer checks the same again)."""
    from miniautoml.contract.params import validate_override

    validate_override(key, value)


def _check_dataset(
    settings: Settings, dataset_id: str, vhash: VersionHash, algorithm: "algorithms_mod.Algorithm | None" = None
) -> str:
    """The dataset's canonical id if the dataset service knows it, the hash's commits exist and
    the algorithm trains on its type."""
    from miniautoml.datasets import show_dataset

    summary = show_dataset(settings, dataset_id)  # NotFoundError for an unknown dataset
    if algorithm is not None:
        algorithms_mod.check_dataset_type(algorithm, summary.dataset_type, f"{summary.dataset_id} ({summary.name})")
    if not vhash.commits:
        raise UserInputError(f"version hash {vhash.text!r} selects no commits: nothing to train on")
    have = {int(c.commit_id) for c in summary.commits}
    missing = [c for c in vhash.commits if c not in have]
    if missing:
        raise NotFoundError(
            f"version hash {vhash.text!r} selects commit(s) {', '.join(map(str, missing))}, "
            f"which dataset {summary.dataset_id} ({summary.name}) does not have"
        )
    return summary.dataset_id


def _check_data_path(data_path: str) -> str:
    """Absolute paths (the trainer runs in the project directory), each existing."""
    parts = [p for p in data_path.split(os.pathsep) if p.strip()]
    if not parts:
        raise UserInputError("--data-path is empty")
    resolved = []
    for part in parts:
        path = Path(part).expanduser().resolve()
        if not path.exists():
            raise UserInputError(f"--data-path {part}: no such file or directory")
        resolved.append(str(path))
    return os.pathsep.join(resolved)


def _check_training_config(request: JobRequest, algorithm: "algorithms_mod.Algorithm") -> None:
    """Compose the trainer's Hydra config with the request to reject bad parameters up front."""
    from omegaconf import OmegaConf

    from miniautoml.contract.params import load_config, validate_params

    fixed = {
        "dataset_id": request.dataset_id,
        "version_hash": str(request.version_hash or ""),
        "model_name": request.model_name,
        "data.path": request.data_path,
    }
    overrides = [f"{k}={v}" for k, v in fixed.items() if v] + algorithm.overrides()
    overrides += [f"{k}={v}" for k, v in request.params.items()]
    try:
        cfg = load_config(overrides)
    except Exception as exc:  # hydra/omegaconf errors: an unknown key, an unparsable value
        first = " ".join(str(exc).split("\n")[0].split())
        raise UserInputError(f"training parameters {_show(request.params)}: {first}") from None
    validate_params(OmegaConf.to_container(cfg, resolve=True))


def _show(params: dict[str, str]) -> str:
    return " ".join(f"-P {k}={v}" for k, v in params.items()) or "(defaults)"


def build_request(
    settings: Settings,
    *,
    model_name: str | None,
    dataset_id: str | None = None,
    version_hash: VersionHash | str | None = None,
    algorithm: str | None = None,
    params: dict[str, str] | None = None,
    data_path: str | None = None,
) -> JobRequest:
    """Validate a training request completely; raises UserInputError/NotFoundError. A version
    hash given as text is parsed here, once; the request carries the `VersionHash`."""
    chosen = algorithms_mod.get_algorithm(algorithm)  # UserInputError for an unknown name
    algorithms_mod.check_available(chosen)
    model_name = (model_name or "").strip()
    if not model_name:
        raise UserInputError("model name missing: pass --model-name NAME (the registered model to add a version to)")
    if not _MODEL_NAME_RE.match(model_name):
        raise UserInputError(
            f"model name {model_name!r}: use up to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    dataset_id, data_path = (dataset_id or "").strip(), (data_path or "").strip()
    if isinstance(version_hash, str):
        from miniautoml.datasets.version_hash import parse as parse_version_hash

        version_hash = parse_version_hash(version_hash) if version_hash.strip() else None
    if data_path and (dataset_id or version_hash):
        raise UserInputError("give --dataset/--version-hash or --data-path, not both")
    if not data_path:
        if not dataset_id:
            raise UserInputError("dataset missing: pass --dataset DATASET and --version-hash HASH")
        if version_hash is None:
            raise UserInputError(f"version hash missing: pass --version-hash HASH (see `miniautoml dataset prepare {dataset_id}`)")
        dataset_id = _check_dataset(settings, dataset_id, version_hash, chosen)
    else:  # CSV files of text,label rows: TEXT_INTENT data
        algorithms_mod.check_dataset_type(chosen, "TEXT_INTENT", f"--data-path {data_path}")
        data_path = _check_data_path(data_path)
    request = JobRequest(
        model_name=model_name, algorithm=chosen.name, dataset_id=dataset_id, version_hash=version_hash,
        data_path=data_path,
    )
    return with_params(request, params or {})


def with_params(request: JobRequest, params: dict[str, str]) -> JobRequest:
    """`request` (validated) with training parameters `params`, checked: a sweep checks each point
    of its search space this way without checking the dataset again."""
    chosen = algorithms_mod.get_algorithm(request.algorithm)
    params = _check_params(dict(params))
    for key, value in params.items():  # the config groups an algorithm implies are its own
        if key in chosen.config_group and value != chosen.config_group[key]:
            raise UserInputError(f"-P {key}={value}: algorithm {chosen.name} sets {key}={chosen.config_group[key]}")
    request = replace(request, params=params)
    _check_training_config(request, chosen)
    return request
