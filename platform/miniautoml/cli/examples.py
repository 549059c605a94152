"""What each command's `--help` ends with: an example to type, and `--format` on list/show commands.

Kept here, in one table, rather than in every command's docstring: the lazy loader attaches them
(`attach`) when it loads a command group, and a test checks that no command lacks one.
"""

from __future__ import annotations

import click

from miniautoml.cli.output import FORMAT_KEY

EXAMPLES: dict[str, list[str]] = {
    "init": ["miniautoml init /tmp/ws", "MINIAUTOML_S3_ENDPOINT=http://127.0.0.1:9000 miniautoml init"],
    "algorithms list": ["miniautoml algorithms list --format table"],
    "algorithms show": ["miniautoml algorithms show intent-minilm"],
    "dataset create": ["miniautoml dataset create intents --type TEXT_INTENT --file data/demo/intents-part1.csv --tag source=demo"],
    "dataset update": ["miniautoml dataset update intents --file data/demo/intents-part2.csv --message lab-005"],
    "dataset prepare": ["miniautoml dataset prepare intents --commit 2    # -> version_hash hashBg=="],
    "dataset fetch": ["miniautoml dataset fetch intents hashBg==    # -> the snapshot's root on disk"],
    "dataset list": ["miniautoml dataset list --format table"],
    "dataset show": ["miniautoml dataset show intents --format table"],
    "dataset delete": ["miniautoml dataset delete intents"],
    "train submit": ["miniautoml train submit --dataset intents --version-hash hashBg== --model-name intent -P epochs=5 --wait"],
    "train sweep": ["miniautoml train sweep --dataset intents --version-hash hashBg== --model-name intent "
                    "-P 'lr=tag(log, interval(1e-4, 1e-1))' --trials 8 --parallel 2 --alias champion"],
    "train status": ["miniautoml train status JOB_ID --format table"],
    "train list": ["miniautoml train list --format table"],
    "train wait": ["miniautoml train wait JOB_ID --timeout 600"],
    "train cancel": ["miniautoml train cancel JOB_ID"],
    "train logs": ["miniautoml train logs JOB_ID"],
    "train runner": ["miniautoml train runner    # drain the queue in the foreground"],
    "cluster up": ["miniautoml cluster up    # then: train submit --backend ray ..."],
    "cluster status": ["miniautoml cluster status --format table"],
    "cluster down": ["miniautoml cluster down"],
    "runs show": ["miniautoml runs show RUN_ID --format table"],
    "runs list": ["miniautoml runs list --limit 10 --format table"],
    "models list": ["miniautoml models list --format table"],
    "models show": ["miniautoml models show intent --format table", "miniautoml models show intent champion"],
    "models promote": ["miniautoml models promote intent 2 --alias champion"],
    "models golden": ["miniautoml models golden intent --dataset golden --version-hash hashAg=="],
    "models evaluate": ["miniautoml models evaluate intent 2"],
    "serve": ["miniautoml serve --port 3001", "miniautoml serve --bento lab-intent:latest --port 3002"],
    "predict": ["miniautoml predict intent@champion 'book a flight to paris' --url http://127.0.0.1:3000"],
    "bento build": ["miniautoml bento build intent@champion"],
    "bento containerize": ["miniautoml bento containerize intent@champion --backend podman"],
    "bento list": ["miniautoml bento list --format table"],
    "lab": ["miniautoml -w /tmp/miniautoml-lab lab --keep-serving"],
    "up": ["miniautoml up --s3    # MLflow server, S3 (MinIO or moto) and the prediction service"],
    "down": ["miniautoml down"],
    "status": ["miniautoml status --format table"],
}

# The list/show commands: `--format table|json` (default: table on a terminal, JSON when piped).
FORMATTED = {
    "algorithms list", "algorithms show", "dataset list", "dataset show", "train status", "train list",
    "cluster status", "runs show", "runs list", "models list", "models show", "bento list", "status",
}


def _store_format(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    ctx.meta[FORMAT_KEY] = value
    return value


def _format_option() -> click.Option:
    return click.Option(
        ["--format", "output_format"], type=click.Choice(["json", "table"]), default=None, expose_value=False,
        callback=_store_format, help="json or table [default: table on a terminal, json when piped].",
    )


def attach(command: click.Command, path: str) -> click.Command:
    """Give `command` (and, for a group, each subcommand) its example and `--format`; idempotent."""
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            attach(sub, f"{path} {name}")
        return command
    examples = EXAMPLES.get(path)
    if examples and not (command.epilog or "").startswith("Example"):
        body = "\n".join(f"  $ {line}" for line in examples)
        command.epilog = f"Example{'s' if len(examples) > 1 else ''}:\n\n\b\n{body}"
    if path in FORMATTED and not any(p.name == "output_format" for p in command.params):
        command.params.append(_format_option())
    return command
