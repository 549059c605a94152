"""`miniautoml serve` (the prediction server) and `miniautoml predict` (its client)."""

from __future__ import annotations

import click

from miniautoml.cli.common import settings_of
from miniautoml.cli.output import emit, info


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=3000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=None, type=int, help="Server processes [default: $MINIAUTOML_WORKERS or 1].")
@click.option("--bento", default=None, metavar="TAG", help="Serve a built bento instead of the workspace's registry.")
@click.option(
    "--api-keys-file",
    default=None,
    metavar="FILE",
    help="Require 'Authorization: Bearer KEY' on /predict, /predict_batch and /metrics; one key per line, "
    "reread on change [default: $MINIAUTOML_API_KEYS_FILE].",
)
@click.option(
    "--registered-only/--any-run",
    default=None,
    help="Serve registered model versions only (other run ids: 403) "
    "[default: $MINIAUTOML_REGISTERED_ONLY, else on unless --host is loopback].",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    workers: int | None,
    bento: str | None,
    api_keys_file: str | None,
    registered_only: bool | None,
) -> None:
    """Run the prediction service (BentoML) for the workspace's models.

    POST /predict {"model_id": RUN_ID|NAME@ALIAS|NAME/VERSION, "document": TEXT}.
    Knobs: MINIAUTOML_MODEL_CACHE_SIZE, MINIAUTOML_ALIAS_REFRESH_SECONDS, MINIAUTOML_BATCHING,
    MINIAUTOML_MAX_DOCUMENT_CHARS, ... (see miniautoml.serving.ServingOptions).
    """
    import os

    from miniautoml import processes
    from miniautoml.ports import require_free_port
    from miniautoml.serving.client import server_launch
    from miniautoml.serving.client.launch import exposure_warning

    settings = settings_of(ctx)
    keys = api_keys_file or os.environ.get("MINIAUTOML_API_KEYS_FILE", "").strip()
    warning = exposure_warning(host, {"MINIAUTOML_API_KEYS_FILE": keys} if keys else {})
    if warning:
        info(warning)
    launch = server_launch(
        settings,
        host=host,
        port=port,
        workers=workers,
        bento=bento,
        api_keys_file=api_keys_file,
        registered_only=registered_only,
    )
    require_free_port(host, port, "--port")  # one line, exit 2, instead of circus's traceback and exit 1
    info(f"serving {'bento ' + bento if bento else 'the model registry'} on http://{host}:{port}")
    processes.exec_command(launch)


@click.command("predict")
@click.argument("model_id")
@click.argument("documents", nargs=-1, required=True)
@click.option("--url", default="http://127.0.0.1:3000", show_default=True, help="The prediction server.")
@click.option("--top-k", default=3, show_default=True, type=int, help="Scores to return per document.")
@click.option("--timeout", default=30.0, show_default=True, type=float, help="Seconds to wait for the answer.")
def predict(model_id: str, documents: tuple[str, ...], url: str, top_k: int, timeout: float) -> None:
    """Classify DOCUMENTS with MODEL_ID (run id, NAME@ALIAS or NAME/VERSION) on a running server."""
    from miniautoml.model_ref import ModelRef
    from miniautoml.serving.client import request_prediction

    ref = ModelRef.parse(model_id)  # a malformed id is this command's error, not the server's 400
    emit(request_prediction(url, ref.text, documents, top_k=top_k, timeout=timeout))


commands = {"serve": serve, "predict": predict}
