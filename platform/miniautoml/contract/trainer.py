"""The trainer as the platform sees it: a module the MLproject's entry points run, its code, and
what the platform passes it in the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

TRAINER_MODULE = "training_code.train"  # the entry points' `python -m` module
# What makes a model besides its data: shipped to a Ray node, and `code_dirty` when it differs.
CODE_PATHS = ("MLproject", "training_code", "params")
# A tuple of module names on the trainer module: what a warm runner imports besides it (the
# trainer's lazy imports), so a forked job finds them loaded.
WARM_IMPORTS_ATTR = "WARM_IMPORTS"
JOB_ID_ENV = "MINIAUTOML_JOB_ID"  # set by the jobs service: the job (= run) id
CODE_TAGS_ENV = "MINIAUTOML_CODE_TAGS"  # JSON: code_tags() of the checkout a shipped copy came from


def code_tags(project_root: Path) -> dict[str, str]:
    """`mlflow.source.git.commit` of the training code and `code_dirty` ("true" when CODE_PATHS
    differ from that commit); nothing outside git. A Ray node runs a shipped copy of the code, not
    a checkout: the submitter's tags come in CODE_TAGS_ENV."""
    from miniautoml.adapters import git
    from miniautoml.contract.tags import CODE_DIRTY, GIT_COMMIT

    shipped = os.environ.get(CODE_TAGS_ENV)
    if shipped:
        return {str(k): str(v) for k, v in json.loads(shipped).items()}
    commit = git.rev(project_root)
    if commit == "unknown":
        return {}
    try:
        dirty = git.dirty(project_root, list(CODE_PATHS))
    except Exception:  # a git that cannot tell: say nothing rather than something wrong
        return {GIT_COMMIT: commit}
    return {GIT_COMMIT: commit, CODE_DIRTY: str(dirty).lower()}
