"""`python -m miniautoml.jobs runner [--workspace WS] [--slots N]`: drain the queue, then exit."""

from __future__ import annotations

import argparse
import sys

from miniautoml.config import load_settings
from miniautoml.errors import MiniAutoMLError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m miniautoml.jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("runner", help="run queued training jobs until the queue is empty")
    run.add_argument("--workspace", "-w", default=None)
    run.add_argument("--slots", type=int, default=None, help="runner slots to compete for (default: max runners)")
    args = parser.parse_args(argv)
    try:
        from miniautoml.jobs import runner

        runner.main(load_settings(args.workspace), args.slots)
    except MiniAutoMLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
