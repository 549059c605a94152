"""Every patch of a third-party internal, each behind the same guard: the versions it was pinned on.

A patch here relies on code its project does not promise to keep (a private function, a class's
body, an on-disk layout). Each one declares, at import, the versions it was written and pinned for
(`Guard`), checked against what is installed once per process, when the patch is first asked for
(so that importing an adapter costs no package-metadata scan: ~50 ms a CLI call would pay); outside
them it takes the unpatched path (the tool as it is, or the slower public route) and logs one
warning line saying so. Inside them it trusts the internals: a pin test
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

import functools
import logging
import sys
from dataclasses import dataclass, field

from miniautoml.errors import MiniAutoMLError

log = logging.getLogger(__name__)


class CompatError(MiniAutoMLError):
    """A patched path was asked for outside the versions its patch was pinned on."""


@dataclass
class Guard:
    """Whether a patch may run: every requirement (`dvc>=3.67,<3.68`) met by what is installed."""

    patch: str  # what the patch does, for the messages
    requirements: tuple[str, ...]
    unpatched: str  # what happens outside the range
    _warned: bool = field(default=False, repr=False, compare=False)

    @functools.cached_property
    def problem(self) -> str:
        """"" when every requirement is met, else why not (one line); checked once."""
        return "; ".join(p for p in map(_problem, self.requirements) if p)

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
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _problem(requirement: str) -> str:
    from packaging.requirements import Requirement
    from packaging.version import Version

    req = Requirement(requirement)
    found = installed(req.name)
    if found is None:
        return f"{req.name} is not installed"
    if not req.specifier.contains(Version(found), prereleases=True):
        return f"{req.name} {found} is outside {req.specifier}, the versions it was pinned on"
    return ""


def guard(patch: str, *requirements: str, unpatched: str) -> Guard:
    """The guard of `patch`: `requirements` (PEP 508, as in pyproject), checked on first use."""
    return Guard(patch, tuple(requirements), unpatched)
