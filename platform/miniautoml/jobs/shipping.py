"""What a Ray job's node gets: exactly what the job names, in one Ray `working_dir` package, never a
path of the submitting machine (jobs/backends/ray.py submits it).

- The training code as it is here: MLproject, training_code/, params/ and platform/miniautoml/
  (put on the node's PYTHONPATH ahead of any installed copy), with the checkout's code tags
  (`mlflow.source.git.commit`, `code_dirty`): the copy is no git checkout.
- A dataset job: the workspace's git revision as a git bundle. The node checks it out into a
  directory of its own; the trainer there pulls the snapshot's bytes from the DVC remote (S3).
  The snapshot is built and pushed here first, so that no node builds it. A node's jobs share one
  DVC cache (MINIAUTOML_NODE_CACHE, else ~/.cache/miniautoml/dvc-cache): a snapshot is downloaded
  once per node, then linked into each job's checkout.
- A `--data-path` job: its CSV files.
- Tracking and storage settings and keys in the job's environment (`runtime_env.env_vars`).

Ray uploads a package once per content (its URI is a content hash) and unpacks it once per node,
shared by the jobs that ship the same bytes: a job never writes into it. It works in a fresh temp
directory that the entrypoint removes when the job ends (or the next job on the node does, when
Ray SIGKILLed the job before it could). The node's Python environment is its own:
MINIAUTOML_NODE_PYTHON where the node was started (`miniautoml join` sets it), else the
submitter's interpreter path, which then must exist on the node.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from miniautoml.config import DVC_CACHE_ENV, LOCAL_REMOTE_ENV, PROJECT_ROOT, Settings
from miniautoml.contract.trainer import CODE_PATHS, CODE_TAGS_ENV, JOB_ID_ENV, code_tags
from miniautoml.jobs import store

if TYPE_CHECKING:
    from mlflow.entities import Run

CODE = (*CODE_PATHS, "platform/miniautoml")  # paths under the project root
BUNDLE = "workspace.bundle"
INPUTS = "inputs"
NODE_PYTHON_ENV = "MINIAUTOML_NODE_PYTHON"
NODE_CACHE_ENV = "MINIAUTOML_NODE_CACHE"  # the node's DVC cache, shared by its jobs (default ~/.cache/miniautoml/dvc-cache)
MISSING_ON_NODE = "miniautoml: the Ray node"  # how the entrypoint's preflight line starts


@dataclass(frozen=True)
class Shipment:
    """A staged package: its directory, and what the job's entrypoint and environment need."""

    directory: Path
    workspace_rev: str | None  # the revision bundled (a dataset job), else None
    data_path: str | None  # the CSV files, relative to the package (a --data-path job), else None
    env: dict[str, str] = field(default_factory=dict)


def stage(settings: Settings, run: "Run", directory: Path) -> Shipment:
    """Write the package of job `run` into the empty `directory`."""
    from miniautoml.adapters import git

    _copy_code(directory)
    tags = run.data.tags
    rev = data_path = None
    if tags.get(store.DATA_PATH):
        data_path = _copy_inputs(tags[store.DATA_PATH], directory / INPUTS)
    else:
        from miniautoml.datasets import ensure_snapshot

        ensure_snapshot(settings, tags[store.DATASET_ID], tags[store.VERSION_HASH])
        rev = git.bundle(settings.workspace, directory / BUNDLE)
    env = {
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        **settings.storage.s3_env(),
        JOB_ID_ENV: run.info.run_id,
        "PYTHONUNBUFFERED": "1",
        CODE_TAGS_ENV: json.dumps(code_tags(PROJECT_ROOT)),
    }
    if settings.storage.is_s3:  # the workspace copy reads its remote from these, not from a local config
        env |= {"MINIAUTOML_S3_ENDPOINT": settings.storage.endpoint or "", "MINIAUTOML_S3_BUCKET": settings.storage.bucket}
    elif rev:  # the embedded remote: a directory of this machine (backends refuses clusters beyond it)
        env[LOCAL_REMOTE_ENV] = str(settings.local_remote)
    return Shipment(directory, rev, data_path, env)


def _copy_code(directory: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for rel in CODE:
        src, dest = PROJECT_ROOT / rel, directory / rel
        if src.is_dir():
            shutil.copytree(src, dest, ignore=ignore)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)


def _copy_inputs(data_path: str, inputs: Path) -> str:
    """Copy each file of `data_path` (os.pathsep-separated) into `inputs`; their package paths."""
    inputs.mkdir()
    shipped = []
    for i, part in enumerate(p for p in data_path.split(os.pathsep) if p.strip()):
        source = Path(part)
        dest = inputs / f"{i}-{source.name}"
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, dest)
        shipped.append(f"{INPUTS}/{dest.name}")
    return os.pathsep.join(shipped)


# The entrypoint, run by Ray in the unpacked package. Tokens @...@ are filled in by `entrypoint`.
_SCRIPT = """\
fail() { echo "@MISSING@ $(hostname) $1 (what a node needs: docs/deploy/ray-cluster.md)" >&2; exit 3; }
PY="${@NODE_PYTHON@:-@PYTHON@}"
[ -x "$PY" ] || fail "has no Python environment at $PY (set @NODE_PYTHON@ where the node starts)"
pkg=$PWD
# the directories of jobs SIGKILLed before their trap ran: their shell's pid is gone
for old in "${TMPDIR:-/tmp}"/miniautoml-job-*-*; do
  pid=${old##*/miniautoml-job-}; pid=${pid%%-*}
  [ -d "$old" ] && [ -O "$old" ] && ! kill -0 "$pid" 2>/dev/null && rm -rf "$old"
done
job=$(mktemp -d "${TMPDIR:-/tmp}/miniautoml-job-$$-XXXXXX") || fail "cannot create a job directory in ${TMPDIR:-/tmp}"
trap 'rm -rf "$job"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
@CHECKOUT@
export MINIAUTOML_WORKSPACE="$job/workspace" MINIAUTOML_PYTHON="$PY" PATH="${PY%/*}:$PATH"
export @DVC_CACHE@="${@NODE_CACHE@:-${XDG_CACHE_HOME:-$HOME/.cache}/miniautoml/dvc-cache}"
export PYTHONPATH="$pkg/platform:$pkg${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -m mlflow @ARGS@ --storage-dir "$job/storage"
"""
_CHECKOUT = """\
command -v git >/dev/null 2>&1 || fail "has no git (to check out workspace revision @REV@)"
{ git clone -q --no-checkout "$pkg/@BUNDLE@" "$job/workspace" && git -C "$job/workspace" checkout -q --detach @REV@; } \
>"$job/git.log" 2>&1 || fail "could not check out workspace revision @REV@: $(tail -n 1 "$job/git.log")"\
"""


def entrypoint(shipment: Shipment, mlflow_args: list[str]) -> str:
    """The job's shell command on its node: check for the node's own Python (and git), check out the
    workspace revision into a temp dir, then `python -m mlflow <mlflow_args>` in the package."""
    checkout = 'mkdir "$job/workspace"'
    if shipment.workspace_rev:
        checkout = _CHECKOUT.replace("@REV@", shipment.workspace_rev).replace("@BUNDLE@", BUNDLE)
    script = _SCRIPT.replace("@CHECKOUT@", checkout)
    for token, value in (("@MISSING@", MISSING_ON_NODE), ("@NODE_PYTHON@", NODE_PYTHON_ENV),
                         ("@PYTHON@", sys.executable), ("@ARGS@", shlex.join(mlflow_args)),
                         ("@DVC_CACHE@", DVC_CACHE_ENV), ("@NODE_CACHE@", NODE_CACHE_ENV)):
        script = script.replace(token, value)
    return script
