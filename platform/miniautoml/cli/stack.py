"""`miniautoml up | down | status`: the local stack (MLflow server + UI, prediction service, S3)."""

from __future__ import annotations

import click

from miniautoml.cli.common import settings_of
from miniautoml.cli.output import emit, info

PORT = click.IntRange(1, 65535)


@click.command("up")
@click.option("--s3", "s3", is_flag=True, help="Also run a local S3 server (minio if on PATH, else moto) "
              "and point the workspace's storage at it (until `down`).")
@click.option("--no-serve", is_flag=True, help="Do not start the prediction service.")
@click.option("--host", envvar="MINIAUTOML_HOST", default="127.0.0.1", show_default=True,
              help="Interface to bind [env MINIAUTOML_HOST].")
@click.option("--mlflow-port", type=PORT, envvar="MINIAUTOML_MLFLOW_PORT", default=5000, show_default=True,
              help="MLflow tracking server + UI [env MINIAUTOML_MLFLOW_PORT].")
@click.option("--serve-port", type=PORT, envvar="MINIAUTOML_SERVE_PORT", default=3000, show_default=True,
              help="Prediction service [env MINIAUTOML_SERVE_PORT].")
@click.option("--s3-port", type=PORT, envvar="MINIAUTOML_S3_PORT", default=9000, show_default=True,
              help="S3 server, with --s3 [env MINIAUTOML_S3_PORT].")
@click.option("--timeout", type=click.FloatRange(min=1), envvar="MINIAUTOML_STACK_TIMEOUT", default=180.0,
              show_default=True, help="Seconds each service may take to become ready.")
@click.option("--auth", is_flag=True, help="Run MLflow with its login (`--app-name basic-auth`); the admin is "
              "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (password: 12+ characters).")
@click.option("--auth-secret-file", type=click.Path(dir_okay=False), default=None,
              help="With --auth (implied): read the admin as `username:password` from this file instead.")
@click.pass_context
def up(ctx: click.Context, s3: bool, no_serve: bool, host: str, mlflow_port: int, serve_port: int,
       s3_port: int, timeout: float, auth: bool, auth_secret_file: str | None) -> None:
    """Start the local stack in the background; services already running are reported, not restarted.

    Prints JSON with each service's state (started | running), pid, URL and log file.
    """
    from miniautoml import stack
    from miniautoml.stack.services import admin_credentials

    admin = admin_credentials(auth_secret_file) if (auth or auth_secret_file) else None  # before anything starts
    settings = settings_of(ctx)
    opts = stack.StackOptions(host=host, mlflow_port=mlflow_port, serve_port=serve_port, s3_port=s3_port,
                              s3=s3, serve=not no_serve, timeout=timeout, auth=admin)
    result = stack.up(settings, opts, progress=info)
    for name, svc in result["services"].items():
        info(f"{name}: {svc['state']} {svc.get('url') or ''}".rstrip())
    if "env" in result:
        exports = " ".join(f"{k}={v}" for k, v in result["env"].items())
        info(f"local S3 uses dev-only default keys; for dataset commands: export {exports}")
    emit(result)


@click.command("down")
@click.option("--grace", type=click.FloatRange(min=0), envvar="MINIAUTOML_STACK_GRACE", default=10.0,
              show_default=True, help="Seconds between SIGTERM and SIGKILL.")
@click.pass_context
def down(ctx: click.Context, grace: float) -> None:
    """Stop exactly the services `up` started in this workspace.

    After `up --s3`, the workspace's storage goes back to what it was before, and dataset data
    pushed only to the local S3 server is uploaded there from the local DVC cache. moto (the S3
    server when minio is not installed) keeps its data in memory: `down` loses it and says so.
    """
    from miniautoml import stack

    result = stack.down(settings_of(ctx), grace=grace)
    if not result["services"]:
        info("nothing was running")
    if "storage" in result:
        storage = result["storage"]
        if storage["restored"]:
            uploaded = storage.get("repushed")
            info(f"storage: back to {storage['remote']}"
                 + (f" ({uploaded} file(s) uploaded there from the local DVC cache)" if uploaded else ""))
        else:
            info(f"storage: left as {storage['config']} names it ({storage['remote']})")
    for warning in result.get("warnings", []):
        info(f"warning: {warning}")
    emit(result)


@click.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the local stack's services: state, pid, alive, healthy, URL, log."""
    from miniautoml import stack

    emit(stack.status(settings_of(ctx)))


commands = {"up": up, "down": down, "status": status}
