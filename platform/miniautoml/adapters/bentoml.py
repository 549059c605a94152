"""BentoML: its model store, bento builds and the `bentoml` command line.

The only platform module that imports `bentoml`, apart from the service's own parts
(`miniautoml.serving.server.bentoml_io`; the service lives in `bentos/`) and `miniautoml.compat.bentoml`.
BentoML reads BENTOML_HOME once, when its stores are first used, so `use_workspace()` must run
before anything touches them; child processes get the same through `env()`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from miniautoml.compat import bentoml as compat_bentoml
from miniautoml.config import Settings
from miniautoml.errors import MiniAutoMLError, NotFoundError

_TAG_LINE = re.compile(r"__tag__:(\S+)")


def env(settings: Settings) -> dict[str, str]:
    """Variables of a `bentoml` child process of this workspace (no usage tracking: no network)."""
    return {**settings.tool_env(), "BENTOML_DO_NOT_TRACK": "True"}


def command(*args: str) -> list[str]:
    """`bentoml ARGS...` run by this interpreter (the venv's BentoML, whatever PATH says)."""
    return [sys.executable, "-m", "bentoml", *args]


def serve_command(
    target: str, host: str, port: int, *, working_dir: Path | None = None, args: Mapping[str, str] | None = None
) -> list[str]:
    cmd = command("serve", target, "--host", host, "--port", str(port))
    if working_dir is not None:
        cmd += ["--working-dir", str(working_dir)]
    for key, value in (args or {}).items():
        cmd += ["--arg", f"{key}={value}"]
    return cmd


def use_workspace(settings: Settings) -> None:
    """Point this process's BentoML at the workspace's store (before its first use)."""
    home = str(settings.bentoml_home)
    settings.bentoml_home.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = home
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    current = compat_bentoml.store_home()
    if current is not None and current != home:
        raise MiniAutoMLError(f"BentoML in this process already uses {current}, not {home}")


def import_mlflow_model(
    settings: Settings,
    name: str,
    model_uri: str,
    *,
    labels: Mapping[str, str],
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Copy an MLflow model into the BentoML model store (`bentoml.mlflow.import_model`); its tag.

    A model of the same name whose labels already match (same run) is reused, not copied again.
    """
    from miniautoml.adapters import mlflow as mlflow_adapter

    use_workspace(settings)
    mlflow_adapter.configure(settings)  # `runs:/` URIs are read through the tracking store
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import bentoml
    import bentoml.mlflow
    from bentoml.exceptions import NotFound

    try:
        existing_models = bentoml.models.list(name)
    except NotFound:  # BentoML raises rather than return an empty list
        existing_models = []
    for existing in existing_models:
        if existing.info.labels == dict(labels):
            return str(existing.tag)
    model = bentoml.mlflow.import_model(name, model_uri, labels=dict(labels), metadata=dict(metadata or {}))
    return str(model.tag)


def mlflow_model_requirements(settings: Settings, tag: str) -> list[str]:
    """The pip requirements MLflow recorded with the imported model `tag` (its requirements.txt)."""
    use_workspace(settings)
    import bentoml

    path = Path(bentoml.models.get(tag).path) / "mlflow_model" / "requirements.txt"
    if not path.is_file():
        return []
    lines = (line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def model_labels(settings: Settings, tag: str) -> dict[str, str]:
    use_workspace(settings)
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return dict(bentoml.models.get(tag).info.labels)
    except NotFound:
        raise NotFoundError(f"BentoML model {tag!r} not found in {settings.bentoml_home}") from None


def build(
    settings: Settings,
    build_ctx: Path,
    bentofile: Path,
    *,
    name: str,
    args: Mapping[str, str],
    labels: Mapping[str, str],
    timeout: float = 600,
) -> str:
    """`bentoml build` of `build_ctx` as a child process (the service module is imported fresh
    with the build's arguments); the new bento's tag."""
    cmd = command("build", str(build_ctx), "-f", str(bentofile), "--name", name, "-o", "tag")
    for key, value in args.items():
        cmd += ["--arg", f"{key}={value}"]
    for key, value in labels.items():
        cmd += ["--label", f"{key}={value}"]
    child_env = {**os.environ, **env(settings)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env, cwd=build_ctx, timeout=timeout)
    found = _TAG_LINE.search(proc.stdout)
    if proc.returncode != 0 or not found:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise MiniAutoMLError(f"bentoml build failed: {detail[-1] if detail else f'exit {proc.returncode}'}")
    return found.group(1)


def list_bentos(settings: Settings, name: str | None = None) -> list[dict[str, Any]]:
    use_workspace(settings)
    import bentoml

    from bentoml.exceptions import NotFound

    try:
        bentos = bentoml.bentos.list(name)
    except NotFound:
        return []
    out = []
    for bento in bentos:
        info = bento.info
        out.append(
            {
                "tag": str(bento.tag),
                "created_at": info.creation_time.isoformat(timespec="seconds"),
                "labels": dict(info.labels),
                "models": [str(m.tag) for m in info.all_models],
                "args": dict(getattr(info, "args", {}) or {}),
            }
        )
    return sorted(out, key=lambda b: b["created_at"], reverse=True)


def installed_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed version of each distribution (absent ones left out)."""
    from importlib import metadata

    found = {}
    for dist in names:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


# `bentoml.container.build` in a child process: its builder streams the engine's log to stdout
# (ours is for JSON) and logs, rather than raises, a failed build; the caller checks the image.
_CONTAINERIZE = """
import json, sys
import bentoml
a = json.loads(sys.argv[1])
bentoml.container.build(a["bento"], backend=a["backend"], image_tag=tuple(a["image_tags"]), **a["options"])
"""


def containerize(
    settings: Settings,
    bento_tag: str,
    *,
    backend: str,
    image_tags: Sequence[str],
    options: Mapping[str, Any],
    env_extra: Mapping[str, str],
    log_path: Path,
    timeout: float = 3600,
) -> None:
    """Build the OCI image of `bento_tag` with BentoML's containerize (`backend`: podman, docker...),
    `options` passed to the engine's build (e.g. network, volume, squash); its log in `log_path`."""
    import json

    log_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"bento": bento_tag, "backend": backend, "image_tags": list(image_tags), "options": dict(options)}
    child_env = {**os.environ, **env(settings), **env_extra}
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(
            [sys.executable, "-c", _CONTAINERIZE, json.dumps(payload)],
            stdout=log, stderr=subprocess.STDOUT, env=child_env, timeout=timeout,
        )
    if proc.returncode != 0:
        lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        raise MiniAutoMLError(
            f"bentoml containerize of {bento_tag} failed: {lines[-1] if lines else f'exit {proc.returncode}'} (log: {log_path})"
        )
