"""`miniautoml bento containerize`: a bento of one model and its OCI image.

With podman (the engine these machines have) the image is built by BentoML's containerize on the
Debian base of `base_image`, with:
- the engine's build on the host network and the host's CA bundle mounted, so uv reaches the
  package index through whatever TLS proxy the host trusts;
- CPU torch from the wheel on disk (a wheel directory bind-mounted as /wheels and given to uv as
  --find-links) rather than PyTorch's index;
- BentoML's Debian default of build-essential and git removed again after the packages are in
  (nothing here compiles), and the new layers squashed into one so they take no room.
With docker (and registry access) nothing changes: BentoML's stock python:3.11-slim base.
The image runs as BentoML's non-root `bentoml` user and serves the bento like `bentoml serve TAG`.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from miniautoml import bentos
from miniautoml.adapters import bentoml as bentoml_adapter
from miniautoml.adapters import podman
from miniautoml.config import Settings
from miniautoml.containers import base_image
from miniautoml.errors import MiniAutoMLError, UserInputError
from miniautoml.model_ref import ModelRef

BACKENDS = ("podman", "docker")
WHEELS_IN_BUILD = "/wheels"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SECRET_PATH = "/run/secrets/prediction-api-keys"  # where docker-compose.yml mounts the keys file
# A bento `setup_script`: BentoML runs it as root after the Python packages are installed.
SLIM_SCRIPT_NAME = "miniautoml-slim-image.sh"
SLIM_SCRIPT = """\
#!/bin/sh
# Written by miniautoml.containers.image: what only the build needed goes (BentoML's Debian
# default installs build-essential and git; no package of this image compiles anything).
set -eu
export DEBIAN_FRONTEND=noninteractive
# Not kept for being recommended or suggested by what stays (binutils, gcc by python3.11...).
apt-get purge -y -q --auto-remove -o APT::AutoRemove::RecommendsImportant=false \
    -o APT::AutoRemove::SuggestsImportant=false build-essential git gnupg2 >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache /tmp/* /usr/share/doc/* /usr/share/man/*
"""


@dataclass(frozen=True)
class ContainerImage:
    image: str  # the image's reference in the engine's store
    backend: str
    bento: str  # the bento it was built from (in bentoml_home)
    model_id: str
    run_id: str
    base_image: str | None  # None: BentoML's default (docker backend)
    base_built: bool  # the base was built by this call (not reused)
    base_seconds: float
    build_seconds: float  # bento + image, without the base
    size_bytes: int | None
    torch_wheel: str | None  # the CPU torch wheel used from disk (None: PyTorch's CPU index)
    bentoml_home: str
    log: str  # the engine's build log
    containers_conf: str | None  # podman's settings here: CONTAINERS_CONF for `podman run`
    run: str  # how to run it (keys file mounted as a secret)


def find_torch_wheel(version: str, wheels_dir: Path | None = None) -> Path | None:
    """The CPU torch wheel `version` for this Python in `wheels_dir` (only there when given), else
    in MINIAUTOML_WHEELS_DIR, pip's find-links (PIP_FIND_LINKS) or /opt/wheels, first found."""
    if wheels_dir is not None:
        dirs = [wheels_dir]
    else:
        dirs = [Path(p) for p in os.environ.get("MINIAUTOML_WHEELS_DIR", "").split(os.pathsep) if p]
        dirs += [Path(p) for p in os.environ.get("PIP_FIND_LINKS", "").split() if p and "://" not in p]
        dirs.append(Path("/opt/wheels"))
    base = version.split("+")[0]
    for folder in dirs:
        found = sorted(folder.glob(f"torch-{base}+cpu-cp311-cp311-*linux*x86_64.whl")) if folder.is_dir() else []
        if found:
            return found[-1]
    if wheels_dir is not None:
        raise UserInputError(f"--wheels {wheels_dir}: no torch-{base}+cpu wheel for CPython 3.11 there")
    return None


def _podman_bentofile(base: str, wheel: Path | None):
    def customize(config: dict, ctx: Path) -> dict:
        (ctx / SLIM_SCRIPT_NAME).write_text(SLIM_SCRIPT, encoding="utf-8")
        config["docker"] = {"base_image": base, "setup_script": SLIM_SCRIPT_NAME}
        if wheel is not None:
            python = config.setdefault("python", {})
            python["extra_index_url"] = [u for u in python.get("extra_index_url") or [] if u != bentos.TORCH_CPU_INDEX]
            python["find_links"] = [WHEELS_IN_BUILD]
        return config

    return customize


def _podman_options(wheel: Path | None) -> dict:
    volumes = []
    if wheel is not None:
        volumes.append(f"{wheel.parent}:{WHEELS_IN_BUILD}:ro")
    if HOST_CA_BUNDLE.is_file():
        volumes.append(f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro")
    # `pull=never` as one flag: podman's --pull takes its value only after "=".
    return {"network": "host", "volume": volumes, "squash": True, "pull=never": True}


def _image_tag(bento_tag: str, image_tag: str | None) -> str:
    tag = image_tag or bento_tag
    if not re.fullmatch(r"[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?", tag):
        raise UserInputError(f"--image-tag {tag!r}: not an image name (lowercase NAME[:TAG])")
    return tag


def containerize(
    settings: Settings,
    model_id: ModelRef | str,
    *,
    backend: str = "podman",
    base: str | None = None,
    name: str | None = None,
    image_tag: str | None = None,
    wheels_dir: Path | None = None,
) -> ContainerImage:
    """Build a bento of `model_id` and its image; `base` (podman) defaults to the Debian base,
    built once."""
    if backend not in BACKENDS:
        raise UserInputError(f"--backend {backend!r}: one of {', '.join(BACKENDS)}")
    if image_tag is not None:
        _image_tag("x", image_tag)  # a bad tag fails before anything is built
    base_info = None
    wheel = None
    customize = None
    if backend == "podman":
        podman.require()
        torch = bentoml_adapter.installed_versions(["torch"]).get("torch", "")
        wheel = find_torch_wheel(torch, wheels_dir) if torch else None
        if base is None or base == base_image.DEFAULT_BASE:
            base_info = base_image.ensure_base_image(settings)
            base = base_info.ref
        elif not podman.image_exists(settings, base):
            raise UserInputError(f"--base {base!r}: no such image in podman's store (it is never pulled)")
        customize = _podman_bentofile(base, wheel)
    elif base is not None:
        customize = lambda config, ctx: {**config, "docker": {**config.get("docker", {}), "base_image": base}}  # noqa: E731
    started = time.monotonic()
    # Built outside the workspace: BentoML refuses a setup script under a hidden directory
    # (.miniautoml) or given by an absolute path.
    with tempfile.TemporaryDirectory(prefix="miniautoml-image-") as build_root:
        built = bentos.build_bento(settings, model_id, name=name, customize=customize, build_root=Path(build_root))
    tag = _image_tag(built.tag, image_tag)
    log = settings.state_dir / "containers" / f"{built.tag.replace(':', '-')}.log"
    options = _podman_options(wheel) if backend == "podman" else {}
    env_extra = podman.env(settings) if backend == "podman" else {}
    bentoml_adapter.containerize(
        settings, built.tag, backend=backend, image_tags=[tag], options=options, env_extra=env_extra, log_path=log
    )
    seconds = time.monotonic() - started
    size = None
    image = tag
    if backend == "podman":
        image = tag if "/" in tag.split(":")[0] else f"localhost/{tag}"
        if not podman.image_exists(settings, image):
            lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            raise MiniAutoMLError(
                f"the image of {built.tag} was not built: {lines[-1] if lines else 'no log'} (log: {log})"
            )
        size = podman.image_size(settings, image)
    conf = f"CONTAINERS_CONF={podman.conf_path(settings)} " if backend == "podman" else ""
    run = (
        f"{conf}{backend} run --rm -p 127.0.0.1:3000:3000 -v KEYS_FILE:{SECRET_PATH}:ro "
        f"-e MINIAUTOML_API_KEYS_FILE={SECRET_PATH} {image}"
    )
    return ContainerImage(
        image=image,
        backend=backend,
        bento=built.tag,
        model_id=built.model_id,
        run_id=built.run_id,
        base_image=base,
        base_built=bool(base_info and base_info.built),
        base_seconds=base_info.seconds if base_info else 0.0,
        build_seconds=round(seconds, 1),
        size_bytes=size,
        torch_wheel=str(wheel) if wheel else None,
        bentoml_home=built.bentoml_home,
        log=str(log),
        containers_conf=str(podman.conf_path(settings)) if backend == "podman" else None,
        run=run,
    )
