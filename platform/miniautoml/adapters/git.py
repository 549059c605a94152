"""The workspace's git repository: metadata commits and revisions."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from miniautoml.errors import MiniAutoMLError

# A commit needs an identity; fresh CI machines have none configured.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "MiniAutoML",
    "GIT_AUTHOR_EMAIL": "miniautoml@localhost",
    "GIT_COMMITTER_NAME": "MiniAutoML",
    "GIT_COMMITTER_EMAIL": "miniautoml@localhost",
}


# What `git commit` says when the paths match HEAD (read with LC_ALL=C, see `_git`).
_NOTHING_TO_COMMIT = re.compile(r"nothing (added )?to commit|no changes added to commit")


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LC_ALL="C")
    for key, value in _IDENTITY.items():
        env.setdefault(key, value)
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise MiniAutoMLError(f"git {args[0]} failed in {repo}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def is_repo_root(path: Path) -> bool:
    proc = _git(path, "rev-parse", "--show-toplevel", check=False)
    return proc.returncode == 0 and Path(proc.stdout.strip()).resolve() == path.resolve()


def init(path: Path) -> None:
    _git(path, "init", "-q", "-b", "main")


def commit(repo: Path, paths: list[str], message: str) -> None:
    """Commit exactly `paths` (other staged work of the user is left alone); no change, no commit.

    Two git processes, not four: "nothing to commit" is read from `git commit` itself instead of
    asking `git diff --cached` first (each process costs ~10 ms on a busy machine)."""
    _git(repo, "add", "-A", "--", *paths)
    proc = _git(repo, "commit", "-q", "--no-verify", "-m", message, "--", *paths, check=False)
    if proc.returncode != 0 and not _NOTHING_TO_COMMIT.search(proc.stdout + proc.stderr):
        raise MiniAutoMLError(f"git commit failed in {repo}: {proc.stderr.strip() or proc.stdout.strip()}")


def rev(repo: Path) -> str:
    proc = _git(repo, "rev-parse", "HEAD", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def restore(repo: Path, paths: list[str]) -> None:
    """Put `paths` back to HEAD: tracked files restored, untracked (not ignored) files removed."""
    if _git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode == 0:
        tracked = _git(repo, "ls-tree", "-r", "--name-only", "HEAD", "--", *paths).stdout.split()
        if tracked:
            _git(repo, "checkout", "-q", "HEAD", "--", *paths)
    _git(repo, "clean", "-q", "-f", "-d", "--", *paths)


def dirty(repo: Path, paths: list[str]) -> bool:
    """Whether `paths` differ from HEAD (modified, deleted or untracked-not-ignored files)."""
    return bool(_git(repo, "status", "--porcelain", "--", *paths).stdout.strip())


def bundle(repo: Path, dest: Path) -> str:
    """Write the history up to HEAD as one file (`git bundle`), for a checkout elsewhere; returns
    HEAD's revision. MiniAutoMLError when the repository has no commit yet."""
    head = _git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False).stdout.strip()
    if not head:
        raise MiniAutoMLError(f"{repo} has no git commit yet: nothing to check out elsewhere")
    _git(repo, "bundle", "create", "-q", str(dest), "HEAD")
    return head
