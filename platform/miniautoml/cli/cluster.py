"""`miniautoml cluster up | status | down`: a local Ray head that runs training jobs (`--backend ray`)."""

from __future__ import annotations

import click

from miniautoml.cli.common import settings_of
from miniautoml.cli.output import emit, info


@click.group("cluster")
def cluster() -> None:
    """A local Ray cluster for training jobs (`train submit --backend ray`)."""


@cluster.command("up")
@click.option("--num-cpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPUs the head offers: each job takes one, Ray queues the rest.")
@click.option("--timeout", type=click.FloatRange(min=1), default=90.0, show_default=True,
              help="Seconds the head may take to answer.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the head listens on and advertises; a LAN address lets other machines join.")
@click.pass_context
def up(ctx: click.Context, num_cpus: int, timeout: float, host: str) -> None:
    """Start the workspace's Ray head in the background; prints JSON with its job `address`
    and the `join` command for other machines (`ray start --address <gcs_address>`)."""
    from miniautoml import cluster as cluster_mod

    result = cluster_mod.up(settings_of(ctx), num_cpus=num_cpus, timeout=timeout, host=host)
    info(f"ray head: {result['state']} {result['address']}; other nodes join with: {result.get('join')}")
    emit(result)


@cluster.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """The workspace's Ray cluster: state, job address, GCS address to join, and its nodes
    (`node_count` alive; `nodes`: id, ip, head, alive)."""
    from miniautoml import cluster as cluster_mod

    emit(cluster_mod.status(settings_of(ctx)))


@cluster.command("down")
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the Ray head `cluster up` started here (and the jobs on it)."""
    from miniautoml import cluster as cluster_mod

    result = cluster_mod.down(settings_of(ctx))
    if not result["stopped"]:
        info("no Ray head was running")
    emit(result)


commands = {"cluster": cluster}
