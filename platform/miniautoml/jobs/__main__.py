"""`python -m miniautoml.jobs runner [--workspace WS] [--slots N]`: drain the queue, then exit.

This is the runner's supervisor (jobs/supervisor.py): it forks the runner, and another if one
dies by a signal. `miniautoml train runner` runs a runner in the foreground, unsupervised.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m miniautoml.jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("runner", help="run queued training jobs until the queue is empty")
    run.add_argument("--workspace", "-w", default=None)
    run.add_argument("--slots", type=int, default=None, help="runner slots to compete for (default: max runners)")
    args = parser.parse_args(argv)
    from miniautoml.jobs.supervisor import supervise

    return supervise(args.workspace, args.slots)


if __name__ == "__main__":
    sys.exit(main())
