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
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int | None, bento: str | None) -> None:
    """Run the prediction service (BentoML) for the workspace's models.

    POST /predict {"model_id": RUN_ID|NAME@ALIAS|NAME/VERSION, "document": TEXT}.
    Knobs: MINIAUTOML_MODEL_CACHE_SIZE, MINIAUTOML_ALIAS_REFRESH_SECONDS, MINIAUTOML_BATCHING,
    MINIAUTOML_MAX_DOCUMENT_CHARS, ... (see miniautoml.serving.ServingOptions).
    """
    from miniautoml import processes
    from miniautoml.serving import server_launch

    launch = server_launch(settings_of(ctx), host=host, port=port, workers=workers, bento=bento)
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
    from miniautoml.serving import request_prediction

    emit(request_prediction(url, model_id, documents, top_k=top_k, timeout=timeout))


commands = {"serve": serve, "predict": predict}
