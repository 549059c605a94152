"""What `up` checks before it starts anything, so that a failure leaves nothing half-started."""

from __future__ import annotations

import os

from miniautoml.errors import UserInputError
from miniautoml.ports import require_free_port
from miniautoml.stack.services import BENTO_DIR, AdminCredentials, Launch, StackError, StackOptions


def check_request(opts: StackOptions, wanted: list[str]) -> None:
    """The options themselves: ports in range, `--s3` not against a configured endpoint."""
    if opts.s3 and os.environ.get("MINIAUTOML_S3_ENDPOINT"):
        raise UserInputError(
            f"MINIAUTOML_S3_ENDPOINT={os.environ['MINIAUTOML_S3_ENDPOINT']} already names the storage; "
            "unset it to run the local S3 server with --s3"
        )
    for name in wanted:
        if not 0 < opts.port(name) < 65536:
            raise UserInputError(f"{name} port {opts.port(name)}: not a TCP port ({opts.flag(name)})")


def check_startable(opts: StackOptions, to_start: list[str]) -> None:
    """Every obstacle to starting `to_start`: a port taken or shared, the service file missing."""
    ports: dict[int, str] = {}
    for name in to_start:
        port = opts.port(name)
        if port in ports:
            raise UserInputError(f"{ports[port]} and {name} cannot both use port {port}")
        ports[port] = name
        require_free_port(opts.host, port, opts.flag(name), what=name)
    if "serve" in to_start and not (BENTO_DIR / "service.py").is_file():
        raise UserInputError(
            f"the prediction service {BENTO_DIR / 'service.py'} is missing; start the rest with --no-serve"
        )


def check_admin_login(launch: Launch, admin: AdminCredentials) -> None:
    """The admin can log in: an auth database of an earlier `up --auth` keeps its admin's password."""
    import base64
    import urllib.error
    import urllib.request

    token = base64.b64encode(f"{admin.username}:{admin.password}".encode()).decode()
    request = urllib.request.Request(
        launch.url + "/api/2.0/mlflow/experiments/search?max_results=1",
        headers={"Authorization": f"Basic {token}"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30):
            return
    except urllib.error.HTTPError as exc:
        if exc.code != 401:
            return  # not a login problem; the server is up and the caller will see the rest
    except (urllib.error.URLError, OSError):
        return
    raise StackError(
        f"mlflow: the admin '{admin.username}' cannot log in with the given password: the auth database "
        f"{launch.extra.get('auth_db')} of an earlier `up --auth` keeps its own; use that password, change it "
        "through MLflow's update-password API, or delete that file to start over"
    )
