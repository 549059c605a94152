"""The code's shape: which package may import which, and how long a file may grow."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLATFORM, TRAINER, BENTOS = REPO / "platform" / "miniautoml", REPO / "training_code", REPO / "bentos"
# What the trainer may use of the platform: the contract, and the platform's shared base.
TRAINER_MAY_IMPORT = ("miniautoml.contract", "miniautoml.config", "miniautoml.errors", "miniautoml.redact",
                      "miniautoml.environment",
                      "miniautoml.suggest", "miniautoml.adapters.mlflow", "miniautoml.adapters.git")  # fmt: skip
# Logged with each model (MLflow code_paths) and loaded where no platform is installed.
MODEL_MODULES = ("pyfunc.py", "minilm.py", "model.py", "tokenizer.py")
MAX_LINES = 400


def sources(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file, those inside functions too (`from a import b`
    counts as `a.b`: b may be a module), and of every `importlib.import_module("...")` /
    `__import__("...")` with a literal name."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def offending(paths: list[Path], bad) -> list[str]:
    return [f"{p.relative_to(REPO)}:{line}: {module}" for p in paths for line, module in imported(p) if bad(module)]


def test_the_platform_never_imports_the_trainer():
    """It starts the trainer through MLflow Projects and shares only miniautoml.contract with it."""
    assert offending(sources(PLATFORM, BENTOS), lambda m: within(m, "training_code")) == []


def test_the_trainer_imports_only_the_contract_and_the_shared_base_of_the_platform():
    def bad(module: str) -> bool:
        return within(module, "miniautoml") and not any(within(module, ok) for ok in TRAINER_MAY_IMPORT)

    assert offending(sources(TRAINER), bad) == []


@pytest.mark.parametrize("name", MODEL_MODULES)
def test_a_logged_models_code_imports_no_platform(name: str):
    assert offending([TRAINER / name], lambda m: within(m, "miniautoml")) == []


@pytest.mark.parametrize(
    "half, other", [("server", "client"), ("client", "server"), ("shared", "server"), ("shared", "client")]
)
def test_the_prediction_servers_halves_do_not_import_each_other(half: str, other: str):
    """serving/server/ runs inside `bentoml serve`, serving/client/ outside it; model_id, options and
    auth are the only modules both use."""
    serving = PLATFORM / "serving"
    paths = sorted(serving.glob("*.py")) if half == "shared" else sources(serving / half)
    assert offending(paths, lambda m: within(m, f"miniautoml.serving.{other}")) == []


def test_the_import_scan_sees_imports_inside_functions_and_by_name(tmp_path: Path):
    """The scan above is only as good as this: lazy and dynamic imports count too."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import importlib\n\ndef f():\n    from training_code.train import train\n"
        "    importlib.import_module('training_code.data')\n    import training_code\n",
        encoding="utf-8",
    )
    assert sorted(m for _, m in imported(probe)) == [
        "importlib", "training_code", "training_code.data", "training_code.train.train"
    ]


def module_exists(module: str) -> bool:
    root, *parts = module.split(".")
    base = {"miniautoml": PLATFORM, "training_code": TRAINER}[root].joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def test_every_import_of_our_own_modules_names_one_that_exists():
    """Lazy imports inside functions fail only when they run: a module moved under them is found here."""
    missing = []
    for path in sources(PLATFORM, TRAINER, BENTOS, REPO / "tests", REPO / "benchmarks"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("miniautoml", "training_code") and not module_exists(name):
                    missing.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    assert missing == []


def test_no_source_file_is_over_400_lines():
    long = [
        f"{p.relative_to(REPO)}: {n} lines"
        for p in sources(PLATFORM, TRAINER, BENTOS)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert long == []
