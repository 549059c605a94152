"""The guard every patch of a third-party internal shares (miniautoml.compat.guard), and the rule
that only adapters/ and compat/ import MLflow, DVC and BentoML."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import miniautoml
from miniautoml import compat


def test_a_guard_is_active_when_every_requirement_is_installed() -> None:
    found = compat.installed("bentoml")
    guard = compat.guard("patch", f"bentoml=={found}", "python>=3.11", unpatched="as is")
    assert guard.active and guard.applies() and guard.problem == ""


def test_a_guard_outside_its_versions_names_the_version_found() -> None:
    guard = compat.guard("patch", "dvc>=99", unpatched="as is")
    assert not guard.active
    assert guard.problem == f"dvc {compat.installed('dvc')} is outside >=99, the versions it was pinned on"


def test_a_guard_on_a_missing_distribution_says_it_is_not_installed() -> None:
    assert compat.guard("patch", "no-such-distribution>=1", unpatched="as is").problem == (
        "no-such-distribution is not installed"
    )


def test_require_outside_the_versions_is_one_line_naming_the_patch() -> None:
    with pytest.raises(compat.CompatError) as raised:
        compat.guard("the fork reset", "python<3", unpatched="cold starts").require()
    assert str(raised.value).startswith("the fork reset: python ") and "\n" not in str(raised.value)


# --------------------------------------------------------------------------------------------
# Who imports the tools: adapters/ (their public APIs) and compat/ (their internals) only
# --------------------------------------------------------------------------------------------

PACKAGE = Path(miniautoml.__file__).parent
BOUNDARY = ("adapters/", "compat/")
TOOLS = {
    "mlflow": BOUNDARY,
    "dvc": BOUNDARY,
    "dvc_data": BOUNDARY,
    "dvc_objects": BOUNDARY,
    # bentoml_io declares the service's IO descriptors: part of the server, loaded by bentos/service.py only.
    "bentoml": (*BOUNDARY, "serving/server/bentoml_io.py"),
}


def runtime_imports(tree: ast.AST) -> set[str]:
    """Top-level names of the modules a module imports when it runs (not under `if TYPE_CHECKING:`)."""
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found |= set().union(*(runtime_imports(child) for child in node.orelse)) if node.orelse else set()
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
        found |= runtime_imports(node)
    return found


def test_the_import_scan_sees_imports_inside_functions_but_not_type_checking_blocks() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import mlflow\ndef f():\n    from dvc.repo import Repo\n"
    assert runtime_imports(ast.parse(source)) == {"typing", "dvc"}


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_only_adapters_and_compat_import_the_tool(tool: str) -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if not name.startswith(TOOLS[tool]) and tool in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            offenders.append(name)
    assert offenders == [], f"{tool} imported outside {', '.join(TOOLS[tool])}: go through miniautoml.adapters"
