"""`miniautoml bento ...`: one model packed with the prediction service (a BentoML bento)."""

from __future__ import annotations

from pathlib import Path

import click

from miniautoml.cli.common import settings_of
from miniautoml.cli.output import emit, info


@click.group("bento")
def bento() -> None:
    """Bentos: a model plus the prediction service, servable and containerizable without MLflow."""


@bento.command("build")
@click.argument("model_id")
@click.option("--name", default=None, help="Bento and BentoML model name [default: the registered name].")
@click.pass_context
def build(ctx: click.Context, model_id: str, name: str | None) -> None:
    """Build a bento serving MODEL_ID (NAME@ALIAS, NAME/VERSION or a run id).

    Prints the bento's tag; then `bentoml serve TAG --host 127.0.0.1` or `bentoml containerize TAG`
    (with BENTOML_HOME set to the workspace's store, shown as `bentoml_home`).
    """
    from miniautoml.bentos import build_bento
    from miniautoml.model_ref import ModelRef

    ref = ModelRef.parse(model_id)  # a malformed id stops here, before the workspace is read
    info(f"building a bento of {ref} ...")
    emit(build_bento(settings_of(ctx), ref, name=name))


@bento.command("containerize")
@click.argument("model_id")
@click.option("--backend", type=click.Choice(["podman", "docker"]), default="podman", show_default=True,
              help="Container engine: podman (offline Debian base) or docker (BentoML's python:3.11-slim).")
@click.option("--base", default=None, help="Base image [podman default: the Debian base, built once and cached].")
@click.option("--name", default=None, help="Bento and BentoML model name [default: the registered name].")
@click.option("--image-tag", default=None, help="Image NAME[:TAG] [default: the bento's tag].")
@click.option("--wheels", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory with the CPU torch wheel [default: MINIAUTOML_WHEELS_DIR, PIP_FIND_LINKS, /opt/wheels].")
@click.pass_context
def containerize(
    ctx: click.Context, model_id: str, backend: str, base: str | None, name: str | None,
    image_tag: str | None, wheels: Path | None,
) -> None:
    """Build a bento serving MODEL_ID and its OCI image (BentoML's containerize).

    Prints JSON with the image, its size and build seconds, and how to run it. The image runs as a
    non-root user and needs no MLflow server and no S3 keys; mount the API keys file as a secret
    (MINIAUTOML_API_KEYS_FILE).
    """
    from miniautoml.containers.image import containerize as build_image
    from miniautoml.model_ref import ModelRef

    ref = ModelRef.parse(model_id)
    info(f"containerizing {ref} with {backend} (the first podman build also makes the Debian base) ...")
    emit(build_image(settings_of(ctx), ref, backend=backend, base=base, name=name,
                     image_tag=image_tag, wheels_dir=wheels))


@bento.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Bentos in the workspace's BentoML store, newest first."""
    from miniautoml.bentos import list_bentos

    emit(list_bentos(settings_of(ctx)))


commands = {"bento": bento}
