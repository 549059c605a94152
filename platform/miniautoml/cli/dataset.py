"""`miniautoml dataset ...`: the book's data-management API on the command line."""

from __future__ import annotations

import click

from miniautoml.cli.common import parse_pairs, settings_of
from miniautoml.cli.output import emit, info, write_json

TAG_HELP = "Tag as key=value (repeatable)."


@click.group("dataset")
def dataset() -> None:
    """Datasets as immutable commits; snapshots named by version hash."""


@dataset.command("create")
@click.argument("name")
@click.option("--type", "dataset_type", required=True, help="TEXT_INTENT or GENERIC.")
@click.option("--file", "files", multiple=True, required=True, help="Data file (GENERIC: repeatable).")
@click.option("--description", default="", help="Free text.")
@click.option("--tag", "tags", multiple=True, help=TAG_HELP)
@click.pass_context
def create(ctx: click.Context, name: str, dataset_type: str, files: tuple[str, ...], description: str, tags: tuple[str, ...]) -> None:
    """Create dataset NAME; its commit 1 holds the given file(s)."""
    from miniautoml.datasets import create_dataset

    emit(create_dataset(settings_of(ctx), name, dataset_type, list(files), description, parse_pairs(tags), progress=info))


@dataset.command("update")
@click.argument("dataset_ref", metavar="DATASET")
@click.option("--file", "files", multiple=True, required=True, help="Data file (GENERIC: repeatable).")
@click.option("--message", default=None, help="Commit message.")
@click.option("--tag", "tags", multiple=True, help=TAG_HELP)
@click.pass_context
def update(ctx: click.Context, dataset_ref: str, files: tuple[str, ...], message: str | None, tags: tuple[str, ...]) -> None:
    """Append a commit to DATASET (id or name)."""
    from miniautoml.datasets import update_dataset

    emit(update_dataset(settings_of(ctx), dataset_ref, list(files), message, parse_pairs(tags), progress=info))


@dataset.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """All datasets of the workspace."""
    from miniautoml.datasets import list_datasets

    emit(list_datasets(settings_of(ctx)))


@dataset.command("show")
@click.argument("dataset_ref", metavar="DATASET")
@click.pass_context
def show(ctx: click.Context, dataset_ref: str) -> None:
    """One dataset with its commits."""
    from miniautoml.datasets import show_dataset

    emit(show_dataset(settings_of(ctx), dataset_ref))


@dataset.command("delete")
@click.argument("dataset_ref", metavar="DATASET")
@click.pass_context
def delete(ctx: click.Context, dataset_ref: str) -> None:
    """Remove DATASET from the current state (git and DVC history keep its data)."""
    from miniautoml.datasets import delete_dataset

    emit(delete_dataset(settings_of(ctx), dataset_ref))


@dataset.command("prepare")
@click.argument("dataset_ref", metavar="DATASET")
@click.option("--commit", default=None, help="Last commit to consider (default: the latest).")
@click.option("--tag", "tags", multiple=True, help="Only commits carrying this key=value (repeatable, AND).")
@click.option("--output", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the JSON to FILE instead of stdout (whole or not at all: dvc.yaml's prepare stage).")
@click.pass_context
def prepare(ctx: click.Context, dataset_ref: str, commit: str | None, tags: tuple[str, ...], output: str | None) -> None:
    """Select commits, name the selection by version hash and build its snapshot."""
    from miniautoml.datasets import prepare_snapshot

    record = prepare_snapshot(settings_of(ctx), dataset_ref, commit, parse_pairs(tags), progress=info)
    if output:
        write_json(output, record)
        info(f"wrote {output}")
    else:
        emit(record)


@dataset.command("fetch")
@click.argument("dataset_ref", metavar="DATASET")
@click.argument("version_hash")
@click.pass_context
def fetch(ctx: click.Context, dataset_ref: str, version_hash: str) -> None:
    """The snapshot VERSION_HASH of DATASET on local disk (pulled if needed)."""
    from miniautoml.datasets import fetch_snapshot
    from miniautoml.datasets.version_hash import parse

    emit(fetch_snapshot(settings_of(ctx), dataset_ref, parse(version_hash), progress=info))


commands = {"dataset": dataset}
