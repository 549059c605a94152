"""`miniautoml` entry point: command groups loaded lazily (so `--help` stays fast), errors as one line."""

from __future__ import annotations

import importlib
import os
import sys

import click

from miniautoml.errors import MiniAutoMLError

# group name -> module under miniautoml.cli holding a click object named `group`
GROUPS = {
    "init": "workspace",
    "algorithms": "algorithms",
    "dataset": "dataset",
    "train": "train",
    "cluster": "cluster",
    "runs": "runs",
    "models": "models",
    "serve": "serve",
    "predict": "serve",
    "bento": "bento",
    "lab": "lab",
    "up": "stack",
    "down": "stack",
    "status": "stack",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(GROUPS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module_name = GROUPS.get(name)
        if module_name is None:
            return None
        qualified = f"miniautoml.cli.{module_name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:
                return None  # our command module itself is missing: "No such command"
            raise  # a real import error inside it (or a missing dependency) is shown as such
        from miniautoml.cli.examples import attach

        return attach(module.commands[name], name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="miniautoml", prog_name="miniautoml", message="%(prog)s %(version)s")
@click.option(
    "--workspace",
    "-w",
    envvar="MINIAUTOML_WORKSPACE",
    type=click.Path(file_okay=False),
    help="Workspace directory (default: $MINIAUTOML_WORKSPACE, else the current git checkout).",
)
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """MiniAutoML: datasets (DVC) -> training (MLflow) -> serving (BentoML)."""
    ctx.obj = {"workspace": workspace}


ERROR_CHARS = 500  # an error line longer than this is cut in the middle


def _error_line(message: str) -> str:
    """The message as one bounded line. Values are cut where echoed (`errors.shown`); this
    keeps even a message built elsewhere from echoing a pasted 20,000-character value whole."""
    line = " ".join(message.split("\n"))
    if len(line) <= ERROR_CHARS:
        return line
    return f"{line[:ERROR_CHARS - 200]} … {line[-150:]}"


def main(argv: list[str] | None = None) -> None:
    # stdout carries our JSON only: MLflow otherwise writes "View run ..." links there when a run
    # ends on a tracking server (job status, cancel, reconcile) and "View model" on registration.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_PRINT_MODEL_URLS_ON_CREATION", "false")
    try:
        cli.main(args=argv, prog_name="miniautoml", standalone_mode=False)
    except MiniAutoMLError as exc:
        click.echo(f"error: {_error_line(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a tool below us failed in a way we did not foresee: still one line
        if os.environ.get("MINIAUTOML_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:500]
        click.echo(f"error: {type(exc).__name__}: {first} (MINIAUTOML_DEBUG=1 shows the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
