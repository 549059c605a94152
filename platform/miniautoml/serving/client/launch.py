"""How to run the prediction server: the `bentoml serve` command line of the registry service or a bento."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from miniautoml.errors import UserInputError
from miniautoml.processes import Command
from miniautoml.serving.auth import is_loopback, read_keys_file
from miniautoml.serving.options import ServingOptions

if TYPE_CHECKING:
    from miniautoml.config import Settings


def server_launch(
    settings: "Settings",
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    workers: int | None = None,
    bento: str | None = None,
    api_keys_file: str | None = None,
    registered_only: bool | None = None,
) -> Command:
    """How to run the prediction server: the registry service in `bentos/`, or a built bento.
    The command's `env` is added to the caller's environment.

    `api_keys_file` (else $MINIAUTOML_API_KEYS_FILE) is checked now: missing, unreadable or
    empty raises UserInputError. `registered_only` None means $MINIAUTOML_REGISTERED_ONLY if
    set, else on exactly when `host` is not a loopback address."""
    from miniautoml.adapters import bentoml as bentoml_adapter
    from miniautoml.config import PROJECT_ROOT

    if not 0 < port < 65536:
        raise UserInputError(f"--port {port}: expected 1..65535")
    env = bentoml_adapter.env(settings)
    if workers is not None:
        if workers < 1:
            raise UserInputError(f"--workers {workers}: expected at least 1")
        env["MINIAUTOML_WORKERS"] = str(workers)
    keys_file = api_keys_file or os.environ.get("MINIAUTOML_API_KEYS_FILE", "").strip()
    if keys_file:
        keys_file = os.path.abspath(os.path.expanduser(keys_file))  # the server runs in bentos/
        read_keys_file(keys_file)  # fail here, one line, before the server starts
        env["MINIAUTOML_API_KEYS_FILE"] = keys_file
    if registered_only is None:
        raw = os.environ.get("MINIAUTOML_REGISTERED_ONLY", "").strip()
        registered_only = ServingOptions.from_env({"MINIAUTOML_REGISTERED_ONLY": raw}).registered_only if raw else None
    if registered_only is None:
        registered_only = not is_loopback(host)
    env["MINIAUTOML_REGISTERED_ONLY"] = "1" if registered_only else "0"
    ServingOptions.from_env({**os.environ, **env})  # a bad knob fails here, not in every worker
    bentos_dir = PROJECT_ROOT / "bentos"
    target = bento or "service:PredictionService"
    argv = bentoml_adapter.serve_command(target, host, port, working_dir=None if bento else bentos_dir)
    return Command(argv=argv, cwd=str(bentos_dir), env=env)



def exposure_warning(host: str, env: "dict[str, str]") -> str | None:
    """The warning for binding a non-loopback `host` with no API keys in the server's `env`."""
    if is_loopback(host) or env.get("MINIAUTOML_API_KEYS_FILE"):
        return None
    return (
        f"warning: serving on {host}, reachable from other machines, without API keys: anyone who can "
        "reach it can predict and read /metrics; pass --api-keys-file FILE (or set MINIAUTOML_API_KEYS_FILE)"
    )
