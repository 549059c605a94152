"""Processes named for what they are in `ps`/`top` (`miniautoml runner`, `miniautoml job <id>`...).

A forked process shows its parent's command line until it names itself: a warm job would read
`python -m miniautoml.jobs runner`, so an operator could not tell which one to kill.
"""

from __future__ import annotations

import os


def set_title(title: str) -> None:
    """This process's command line (/proc/<pid>/cmdline) and name as `title`. Its environment
    stays readable in /proc/<pid>/environ (SPT_NOENV: the title fits in the original command
    line, which every title here is shorter than)."""
    os.environ.setdefault("SPT_NOENV", "1")  # read once, by the first setproctitle call
    from setproctitle import setproctitle

    setproctitle(title)
