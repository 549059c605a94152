"""`miniautoml lab`: the book's lab end to end, one JSON line per step on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import click

from miniautoml.cli.common import settings_of
from miniautoml.cli.output import info, json_default


@click.command("lab")
@click.option("--data", "data", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Two CSV files (commit 1, commit 2) instead of the demo data; e.g. the CLINC150 parts.")
@click.option("--golden", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of the golden set the gate compares both versions on (default: the demo's "
                   "evaluation part with the demo data; none with --data).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Prediction service port (0: a free one).")
@click.option("--keep-serving", is_flag=True, help="Leave the prediction service running at the end.")
@click.option("--algorithm", default="intent-classification", show_default=True,
              help="Training algorithm of both trainings (`miniautoml algorithms list`).")
@click.pass_context
def lab(ctx: click.Context, data: tuple[Path, ...], golden: Path | None, port: int, keep_serving: bool,
        algorithm: str) -> None:
    """Dataset -> train -> run info -> golden set -> serve -> predict -> commit 2 -> retrain -> gate -> predict.

    One JSON line per step on stdout; progress (steps, each training epoch) and a final summary
    (the champion version, its test accuracy, the service URL) on stderr.
    """
    import time

    from miniautoml.lab import DEMO_DATA, DEMO_GOLDEN, LabOptions, run_lab

    settings = settings_of(ctx)
    options = LabOptions(data=data or DEMO_DATA, port=port, keep_serving=keep_serving, algorithm=algorithm,
                         golden=golden or (None if data else DEMO_GOLDEN))
    start = time.monotonic()
    done: dict = {}
    for step in run_lab(settings, options, progress=info):
        click.echo(json.dumps(step.to_json(), default=json_default, ensure_ascii=False))
        done = step.result if step.step == "done" else done
    info(f"lab finished in {time.monotonic() - start:.0f}s (workspace {settings.workspace})")
    champion = done.get("champion") or {}
    if champion:
        state = "still serving" if done.get("serving") else "stopped; --keep-serving leaves it running"
        info(f"champion {champion['model']} = version {champion['version']}, "
             f"test_accuracy {champion['test_accuracy']:.3f}, gate {champion.get('gate')}; service {done['url']} ({state})")


commands = {"lab": lab}
