"""`miniautoml algorithms ...`: the training algorithms declared in params/algorithms/."""

from __future__ import annotations

import click

from miniautoml.cli.output import emit


@click.group("algorithms")
def algorithms() -> None:
    """Training algorithms (`train submit --algorithm NAME`)."""


@algorithms.command("list")
def list_() -> None:
    """Every algorithm: name, entry point, description, dataset types, whether it is installed."""
    from miniautoml.algorithms import load_algorithms

    emit([a.to_json() for a in load_algorithms().values()])


@algorithms.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Algorithm NAME with its declaration file and missing modules."""
    from miniautoml.algorithms import show_algorithm

    algorithm = show_algorithm(name)
    emit({**algorithm.to_json(), "missing": algorithm.missing(), "declaration": str(algorithm.path)})


commands = {"algorithms": algorithms}
