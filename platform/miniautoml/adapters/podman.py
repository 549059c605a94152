"""Podman: the settings it needs on these machines, in one place, and the few calls we make.

Debian's podman runs here only with runc (crun fails on setrlimit under hybrid cgroups), the
cgroupfs manager and no default ulimits. Those live in a containers.conf written under the
workspace's state dir; every podman call (ours, and BentoML's `podman build` through `env()`)
gets it through CONTAINERS_CONF. The image store is podman's own (/var/lib/containers as root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from miniautoml.config import Settings
from miniautoml.errors import MiniAutoMLError
from miniautoml.files import atomic_write_text

CONTAINERS_CONF = """\
# Written by miniautoml (adapters/podman.py); read by podman through CONTAINERS_CONF.
[containers]
# podman's default nofile/nproc limits fail with EPERM (setrlimit) in this kind of host.
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""


def conf_path(settings: Settings) -> Path:
    return settings.state_dir / "podman" / "containers.conf"


def env(settings: Settings) -> dict[str, str]:
    """This process's environment plus CONTAINERS_CONF (the file is (re)written if it differs)."""
    path = conf_path(settings)
    if not path.is_file() or path.read_text(encoding="utf-8") != CONTAINERS_CONF:
        atomic_write_text(path, CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(path)}


def unavailable_reason() -> str | None:
    """Why podman cannot run containers here (None when it can)."""
    if shutil.which("podman") is None:
        return "podman is not installed (Debian: apt-get install podman runc; see .ci/setup)"
    if shutil.which("runc") is None and not Path("/usr/sbin/runc").exists():
        return "runc is not installed (Debian: apt-get install runc)"
    if os.geteuid() != 0:
        user = os.environ.get("USER") or str(os.geteuid())
        subuid = Path("/etc/subuid")
        if not subuid.is_file() or not any(
            line.split(":")[0] in (user, str(os.geteuid())) for line in subuid.read_text().splitlines()
        ):
            return f"not root and no rootless podman set up for {user} (no /etc/subuid entry)"
    return None


def require() -> None:
    reason = unavailable_reason()
    if reason:
        raise MiniAutoMLError(f"cannot run containers: {reason}")


def run(
    settings: Settings, args: Sequence[str], *, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`podman ARGS...` with this workspace's settings; one-line error on failure when `check`."""
    require()
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, env=env(settings), timeout=timeout)
    if check and proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise MiniAutoMLError(f"podman {args[0]} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc


def image_exists(settings: Settings, ref: str) -> bool:
    return run(settings, ["image", "exists", ref], check=False).returncode == 0


def image_size(settings: Settings, ref: str) -> int:
    """The image's size in bytes (all its layers, as `podman images` counts it)."""
    out = run(settings, ["image", "inspect", ref, "--format", "{{json .Size}}"]).stdout
    return int(json.loads(out.strip()))


def import_rootfs(settings: Settings, rootfs: Path, ref: str, changes: Sequence[str], *, timeout: float = 600) -> None:
    """`tar -C ROOTFS -c . | podman import - REF` with Dockerfile-style `changes` (ENV, CMD...)."""
    require()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    cmd = ["podman", "import"]
    for change in changes:
        cmd += ["--change", change]
    try:
        proc = subprocess.run(
            [*cmd, "-", ref], stdin=tar.stdout, capture_output=True, text=True, env=env(settings), timeout=timeout
        )
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
    if proc.returncode != 0 or tar.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise MiniAutoMLError(f"podman import of {ref} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
