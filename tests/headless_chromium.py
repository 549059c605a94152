"""Drive Debian's headless Chromium from tests: the DOM a single-page app renders, and screenshots.

Each call is one `chromium --headless` process with a new, empty profile directory that is
removed afterwards, so no state leaks between calls. `--virtual-time-budget` lets the page run
its scripts and fetches until it is idle (or the budget of virtual time is spent) before Chromium
dumps the DOM or paints the screenshot. A React page may still be loading data when one budget
ends, so `wait_for_dom` polls with growing budgets until the page shows what the test waits for.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Flags this machine needs: no sandbox as root, no GPU, and none of Chromium's own background
# connections (update checks, sync, QUIC), which a closed network refuses.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--mute-audio",
)  # fmt: skip
BUDGETS_MS = (3_000, 8_000, 15_000, 30_000)  # virtual time per attempt; the last one repeats


class ChromiumMissing(RuntimeError):
    pass


def chromium_path() -> Path:
    """Debian's chromium, or ChromiumMissing telling how to install it."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    raise ChromiumMissing(
        f"{CHROMIUM} is missing: run `bash .ci/setup` as root (it installs Debian's chromium), "
        "or `apt-get update && apt-get install -y chromium`"
    )


def _run(args: Sequence[str], url: str, timeout: float) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    cmd = [str(chromium_path()), *FLAGS, f"--user-data-dir={profile}", *args, url]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    # No proxy for pages on this machine, even when the environment names one.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True)  # own group: a hung browser is killed whole
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise TimeoutError(f"chromium did not finish {url} within {timeout:g}s: {_stderr_tail(err)}") from None
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode} on {url}: {_stderr_tail(err)}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _stderr_tail(err: bytes, lines: int = 5) -> str:
    # Chromium logs D-Bus complaints on a machine without a session bus: noise, left out.
    text = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip() and "dbus" not in ln]
    return " | ".join(text[-lines:]) or "(no stderr)"


# Every host name fails to resolve and every request goes to a closed proxy: a page that still
# draws needs nothing from a network.
OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9")


def dump_dom(url: str, budget_ms: int = 15_000, timeout: float | None = None, flags: Sequence[str] = ()) -> str:
    """The page's serialized DOM after `budget_ms` of virtual time (scripts have run)."""
    timeout = timeout if timeout is not None else budget_ms / 1000 + 45
    args = [*flags, "--dump-dom", f"--virtual-time-budget={budget_ms}"]
    return _run(args, url, timeout).stdout.decode("utf-8", "replace")


def screenshot(url: str, path: Path, budget_ms: int = 15_000, size: tuple[int, int] = (1400, 1000),
               timeout: float | None = None, flags: Sequence[str] = ()) -> Path:
    """A PNG of the page's viewport after `budget_ms` of virtual time (`flags`: e.g. OFFLINE)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    timeout = timeout if timeout is not None else budget_ms / 1000 + 45
    _run([*flags, f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={budget_ms}"],
         url, timeout)
    if not path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {path}")
    return path


def visible_text(dom: str) -> str:
    """The DOM's text: scripts, styles and tags dropped, entities decoded, whitespace collapsed."""
    dom = re.sub(r"<(script|style|noscript|template)\b.*?</\1\s*>", " ", dom, flags=re.S | re.I)
    dom = re.sub(r"<[^>]+>", " ", dom)
    return " ".join(html.unescape(dom).split())


def hrefs(dom: str) -> list[str]:
    """Every `href` of the DOM's anchors, entities decoded."""
    return [html.unescape(h) for h in re.findall(r"<a\b[^>]*?\bhref=\"([^\"]*)\"", dom, flags=re.I)]


@dataclass
class Page:
    url: str
    dom: str
    budget_ms: int  # the virtual time after which it showed what was waited for
    attempts: int

    @property
    def text(self) -> str:
        return visible_text(self.dom)

    @property
    def links(self) -> list[str]:
        return hrefs(self.dom)


def wait_for_dom(url: str, missing: Callable[[Page], list[str]], timeout: float = 90.0,
                 on_fail: Callable[[Page], None] | None = None) -> Page:
    """Dump `url` with growing virtual-time budgets until `missing(page)` is empty.

    `missing` returns what the page does not show yet (human-readable). Past `timeout` seconds
    AssertionError names what is still missing, with the start of the page's text; `on_fail`
    gets the last page first (to keep its DOM as an artifact).
    """
    deadline = time.monotonic() + timeout
    attempt, last, lacking = 0, None, ["(the page was never loaded)"]
    while True:
        budget = BUDGETS_MS[min(attempt, len(BUDGETS_MS) - 1)]
        attempt += 1
        left = deadline - time.monotonic()
        last = Page(url, dump_dom(url, budget, timeout=max(left, 5) + 30), budget, attempt)
        lacking = missing(last)
        if not lacking:
            return last
        if time.monotonic() >= deadline:
            break
    if on_fail is not None:
        on_fail(last)
    raise AssertionError(
        f"{url} still lacks after {attempt} load(s) in {timeout:g}s (last virtual-time budget {last.budget_ms} ms): "
        + "; ".join(lacking) + f"\npage text: {last.text[:3000]}"
    )


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ValueError if the file is not a PNG."""
    head = Path(path).read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
