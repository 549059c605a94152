"""Bentos: one trained model packed with the prediction service, servable without MLflow.

`build_bento(settings, "intent@champion")` resolves the model id in the workspace's MLflow,
imports the model into the BentoML model store (`bentoml.mlflow.import_model`, labelled with its
run, dataset and registry version), and builds a bento of `bentos/service.py` whose bento argument
`model` names that BentoML model. `bentoml serve TAG` then answers /predict with exactly that
model; `bentoml containerize TAG` makes an OCI image of it. Any MLflow pyfunc model can be
packed (ours or a foreign one, e.g. an `mlflow.sklearn` pipeline): the service picks its predictor
(`miniautoml.serving.server.predictors`) and the bento's packages add the model's own requirements.
"""

from __future__ import annotations

import ast
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from miniautoml import serving
from miniautoml.serving import server
from miniautoml.config import PROJECT_ROOT, Settings
from miniautoml.errors import MiniAutoMLError
from miniautoml.model_ref import ModelRef
from miniautoml.redact import redact_uri

BENTOS_DIR = PROJECT_ROOT / "bentos"
PACKAGE_DIR = Path(serving.__file__).resolve().parents[1]
# What a bento's image installs, pinned to the versions of this environment at build time.
# mlflow-skinny: pyfunc loading without the tracking server's dependencies.
PACKAGES = ("mlflow-skinny", "pandas", "numpy", "orjson", "uvloop", "httptools", "prometheus-client")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The `bentoml serve` hint binds the loopback; BentoML's own default is every interface (0.0.0.0).
SERVE_HOST = "127.0.0.1"


@dataclass(frozen=True)
class BentoBuild:
    tag: str  # the bento: `bentoml serve TAG`
    model_tag: str  # the BentoML model inside it
    model_id: str  # as given to `bento build`
    run_id: str
    registered_name: str | None
    registered_version: int | None
    dataset_id: str | None
    version_hash: str | None
    bentoml_home: str
    serve: str  # the command that serves it (on the loopback)
    containerize: str  # the command that makes an image of it


def _module_level_imports(path: Path) -> list[str]:
    """Modules a file imports when it is imported (`from a import b` also names `a.b`: b may be a
    module); those inside functions and under `if TYPE_CHECKING:` are left out."""
    names: list[str] = []
    todo = list(ast.parse(path.read_text(encoding="utf-8"), str(path)).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            todo += node.body + node.orelse
        elif isinstance(node, (ast.Try, ast.With)):
            todo += node.body + getattr(node, "orelse", []) + getattr(node, "finalbody", [])
            todo += [stmt for handler in getattr(node, "handlers", []) for stmt in handler.body]
    return names


def _package_files(module: str) -> list[Path]:
    """The files of `miniautoml` importing `module` loads: its own and each package's __init__.py."""
    parts = module.split(".")
    if parts[0] != "miniautoml":
        return []
    files = [PACKAGE_DIR.joinpath(*parts[1:i], "__init__.py") for i in range(1, len(parts))]
    files += [PACKAGE_DIR.joinpath(*parts[1:]).with_suffix(".py"), PACKAGE_DIR.joinpath(*parts[1:], "__init__.py")]
    return [f for f in files if f.is_file()]


def service_modules(service: Path = BENTOS_DIR / "service.py") -> list[Path]:
    """What a bento carries of `miniautoml` (its image has nothing else of ours): the files that
    importing `service` loads, found from the imports made at module level, transitively. The
    service imports more inside functions only on the registry path, which a bento never takes."""
    found: set[Path] = set()
    todo = [service]
    while todo:
        for module in _module_level_imports(todo.pop()):
            for path in _package_files(module):
                if path not in found:
                    found.add(path)
                    todo.append(path)
    return sorted(found)


def copy_service(dest: Path) -> None:
    """The service and the modules it imports, laid out in `dest` as a bento's `src/`."""
    shutil.copy2(BENTOS_DIR / "service.py", dest / "service.py")
    for module in service_modules():
        target = dest / "miniautoml" / module.relative_to(PACKAGE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(module, target)


def _store_name(source: server.ModelSource) -> str:
    """A BentoML tag name (lowercase letters, digits, '-', '_', '.') for the model's bento."""
    base = source.name if source.name else f"run-{source.run_id[:12]}"
    name = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-._") or "model"
    return name[:63]


def _pinned_packages() -> list[str]:
    from miniautoml.adapters import bentoml as bentoml_adapter

    versions = bentoml_adapter.installed_versions(["torch", *PACKAGES])
    if "mlflow-skinny" not in versions:  # a full mlflow install provides the same modules
        versions.update(bentoml_adapter.installed_versions(["mlflow"]))
    torch = versions.pop("torch", None)
    if torch is None:
        raise MiniAutoMLError("torch is not installed; it is needed to describe the bento's image")
    # The CPU build, whatever local label this environment's torch carries.
    packages = [f"torch=={torch.split('+')[0]}+cpu"]
    packages += [f"{name}=={version}" for name, version in versions.items()]
    return packages


def _requirement_name(line: str) -> str:
    return re.split(r"[<>=!~;\[ @]", line, maxsplit=1)[0].strip().lower().replace("_", "-")


def _with_model_requirements(packages: list[str], requirements: list[str]) -> list[str]:
    """`packages` plus what the model's own requirements add (a foreign model's scikit-learn, say);
    a package pinned here already keeps this environment's pin."""
    have = {_requirement_name(p) for p in packages} | {"mlflow", "mlflow-skinny", "torch"}
    extra = [r for r in requirements if _requirement_name(r) not in have]
    return packages + list(dict.fromkeys(extra))


def _bentofile(template: Path, packages: list[str]) -> dict:
    config = yaml.safe_load(template.read_text(encoding="utf-8")) or {}
    python = config.setdefault("python", {})
    python["packages"] = packages
    python["lock_packages"] = False  # never resolve over the network (and never a CUDA torch)
    indexes = list(python.get("extra_index_url") or [])
    if TORCH_CPU_INDEX not in indexes:
        indexes.append(TORCH_CPU_INDEX)
    python["extra_index_url"] = indexes
    include = list(config.get("include") or [])
    for pattern in ("service.py", "miniautoml/**/*.py"):
        if pattern not in include:
            include.append(pattern)
    config["include"] = include
    return config


def model_metadata(settings: Settings, source: server.ModelSource) -> dict[str, str]:
    """What the BentoML model records of where it came from. It ships inside the bento and its
    image, so nothing secret: URIs lose their passwords and credential parameters."""
    return {
        "mlflow_model_uri": redact_uri(source.model_uri) or "",
        "tracking_uri": redact_uri(settings.tracking_uri) or "",
    }


def build_bento(
    settings: Settings,
    model_id: ModelRef | str,
    *,
    name: str | None = None,
    customize: Callable[[dict, Path], dict] | None = None,
    build_root: Path | None = None,
) -> BentoBuild:
    """Import the model `model_id` names into the BentoML store and build a bento serving it.

    `customize(bentofile, build_dir)` may change the bentofile (e.g. the image options of
    `miniautoml.containers`) and add files to the build directory, made under `build_root`
    [default: the workspace's state dir]."""
    from miniautoml.adapters import bentoml as bentoml_adapter

    ref = model_id if isinstance(model_id, ModelRef) else ModelRef.parse(model_id)
    source = server.MlflowResolver(settings).resolve(ref)
    store_name = name or _store_name(source)
    labels = {
        "model_id": ref.text,
        "run_id": source.run_id,
        "registered_name": source.name or "",
        "registered_version": "" if source.version is None else str(source.version),
        "dataset_id": source.dataset_id or "",
        "version_hash": source.version_hash or "",
    }
    labels = {k: v for k, v in labels.items() if v}
    model_tag = bentoml_adapter.import_mlflow_model(
        settings,
        store_name,
        source.model_uri,
        labels=labels,
        metadata=model_metadata(settings, source),
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bento-build-", dir=build_root or settings.state_dir) as tmp:
        ctx = Path(tmp)
        copy_service(ctx)
        bentofile = ctx / "bentofile.yaml"
        packages = _with_model_requirements(
            _pinned_packages(), bentoml_adapter.mlflow_model_requirements(settings, model_tag)
        )
        config = _bentofile(BENTOS_DIR / "bentofile.yaml", packages)
        if customize is not None:
            config = customize(config, ctx)
        bentofile.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        tag = bentoml_adapter.build(
            settings, ctx, bentofile, name=store_name, args={"model": model_tag}, labels=labels
        )
    return BentoBuild(
        tag=tag,
        model_tag=model_tag,
        model_id=ref.text,
        run_id=source.run_id,
        registered_name=source.name,
        registered_version=source.version,
        dataset_id=source.dataset_id,
        version_hash=source.version_hash,
        bentoml_home=str(settings.bentoml_home),
        serve=f"BENTOML_HOME={settings.bentoml_home} bentoml serve {tag} --host {SERVE_HOST}",
        containerize=f"BENTOML_HOME={settings.bentoml_home} bentoml containerize {tag}",
    )


def list_bentos(settings: Settings) -> list[dict]:
    from miniautoml.adapters import bentoml as bentoml_adapter

    return bentoml_adapter.list_bentos(settings)
