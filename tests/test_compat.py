"""The guard every patch of a third-party internal shares (miniautoml.compat.guard)."""

from __future__ import annotations

import pytest

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
