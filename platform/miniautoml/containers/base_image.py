"""The base image of containerized bentos, built offline from Debian packages.

Registries for base images (python:3.11-slim) are out of reach on these machines, so the base is
`debootstrap --variant=minbase --include=python3,python3-venv bookworm` from the Debian mirror apt
already uses, imported with `podman import`. It is built once: an image of that name in podman's
store is reused. uv (this environment's binary) is put in /usr/local/bin, so BentoML's Dockerfile
finds it and needs no pip in the image (Debian's python3 has none, and PEP 668 would refuse it).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from miniautoml.adapters import podman
from miniautoml.config import Settings
from miniautoml.errors import MiniAutoMLError

SUITE = "bookworm"  # Debian 12: Python 3.11, the version of this environment
# Bump when the recipe below changes: a new name, so an old cached base is not reused.
RECIPE = "1"
DEFAULT_BASE = f"localhost/miniautoml-base:{SUITE}-py3.11-r{RECIPE}"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# uv finds the system bundle through SSL_CERT_FILE (by default it trusts only its built-in roots).
CHANGES = (
    "ENV LANG=C.UTF-8",
    "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    'CMD ["/bin/bash"]',
)
# Left out of the base: apt's downloads and lists (the bento's Dockerfile runs `apt-get update`
# again), documentation and manual pages.
PRUNE = ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/doc/*", "usr/share/man/*")


@dataclass(frozen=True)
class BaseImage:
    ref: str
    built: bool  # False: found in podman's store and reused
    seconds: float  # time to build it (0 when reused)
    size_bytes: int


def debian_mirror() -> str:
    """MINIAUTOML_DEBIAN_MIRROR, else the first Debian archive apt is configured with."""
    explicit = os.environ.get("MINIAUTOML_DEBIAN_MIRROR")
    if explicit:
        return explicit
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for url in re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, flags=re.MULTILINE):
            if url.rstrip("/").endswith("/debian"):  # not debian-security
                return url.rstrip("/")
    return DEFAULT_MIRROR


def _uv_binary() -> Path:
    found = Path(sys.executable).with_name("uv")
    if not found.is_file():
        which = shutil.which("uv")
        if which is None:
            raise MiniAutoMLError("uv is not installed in this environment; it is copied into the base image")
        found = Path(which)
    return found


def _debootstrap(root: Path, mirror: str) -> None:
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise MiniAutoMLError("debootstrap is not installed (Debian: apt-get install debootstrap; see .ci/setup)")
    if os.geteuid() != 0:
        raise MiniAutoMLError("building the base image needs root (debootstrap); or pass --base IMAGE")
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror]
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise MiniAutoMLError(f"debootstrap from {mirror} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")


def _prune(root: Path) -> None:
    for pattern in PRUNE:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def ensure_base_image(settings: Settings, ref: str = DEFAULT_BASE) -> BaseImage:
    """The base image `ref` in podman's store: reused if there, else built (once, under a lock)."""
    lock_path = podman.conf_path(settings).with_name("base-image.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two builds at once would debootstrap twice
        if podman.image_exists(settings, ref):
            return BaseImage(ref, built=False, seconds=0.0, size_bytes=podman.image_size(settings, ref))
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="miniautoml-rootfs-", dir="/var/tmp") as tmp:
            root = Path(tmp) / "root"
            _debootstrap(root, debian_mirror())
            _prune(root)
            shutil.copy2(_uv_binary(), root / "usr" / "local" / "bin" / "uv")
            podman.import_rootfs(settings, root, ref, CHANGES)
        seconds = time.monotonic() - started
        return BaseImage(ref, built=True, seconds=round(seconds, 1), size_bytes=podman.image_size(settings, ref))
