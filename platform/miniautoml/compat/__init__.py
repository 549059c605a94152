"""Every patch of a third-party internal, each behind the same guard: the versions it was pinned on.

A patch here relies on code its project does not promise to keep (a private function, a class's
body, an on-disk layout). Each one declares, at import, the installed versions it was written and
pinned for (`Guard`); outside them it takes the unpatched path (the tool as it is, or the slower
public route) and logs one warning line saying so when first asked for. Inside them it trusts the internals: a pin test
per patch (tests/test_compat_*.py) fails when the upstream shape changes, and widening a range
means reading the new upstream code and running those tests on it.

- `compat.bentoml`: request-timeout timers cancelled, no slow lone client after a burst, the
  store's home;
- `compat.dvc`: a commit written in DVC 3's cache and remote layout without a Repo, the local
  config written privately;
- `compat.mlflow`: a fork drops MLflow's client state, the trainer forked in place of the shell;
- `compat.python`: a fork ends as the interpreter would.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from importlib import metadata

from packaging.requirements import Requirement
from packaging.version import Version

from miniautoml.errors import MiniAutoMLError

log = logging.getLogger(__name__)


class CompatError(MiniAutoMLError):
    """A patched path was asked for outside the versions its patch was pinned on."""


@dataclass
class Guard:
    """Whether a patch may run: every requirement (`dvc>=3.67,<3.68`) met by what is installed,
    checked once, when the patch's module is imported."""

    patch: str  # what the patch does, for the messages
    requirements: tuple[str, ...]
    unpatched: str  # what happens outside the range
    problem: str  # "" when every requirement is met, else why not (one line)
    _warned: bool = field(default=False, repr=False, compare=False)

    @property
    def active(self) -> bool:
        return not self.problem

    def applies(self) -> bool:
        """Whether to take the patched path; the first time not, one warning line naming the
        patch, the version found and what runs instead (at use, so a process that never asks for
        the patch never hears of it)."""
        if self.problem and not self._warned:
            self._warned = True
            log.warning("%s NOT applied (%s): %s. See miniautoml/compat/.", self.patch, self.problem, self.unpatched)
        return not self.problem

    def require(self) -> None:
        """For a path with no unpatched variant: a one-line CompatError outside the range."""
        if self.problem:
            raise CompatError(f"{self.patch}: {self.problem}")


def installed(name: str) -> str | None:
    """The installed version of distribution `name` (`python`: the interpreter's), or None."""
    if name == "python":
        return ".".join(str(part) for part in sys.version_info[:3])
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _problem(requirement: str) -> str:
    req = Requirement(requirement)
    found = installed(req.name)
    if found is None:
        return f"{req.name} is not installed"
    if not req.specifier.contains(Version(found), prereleases=True):
        return f"{req.name} {found} is outside {req.specifier}, the versions it was pinned on"
    return ""


def guard(patch: str, *requirements: str, unpatched: str) -> Guard:
    """The guard of `patch`: `requirements` (PEP 508, as in pyproject) checked against what is installed."""
    return Guard(patch, tuple(requirements), unpatched, "; ".join(p for p in map(_problem, requirements) if p))
