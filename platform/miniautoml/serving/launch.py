"""How to run the prediction server: the `bentoml serve` command line of the registry service or a bento."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from miniautoml.errors import UserInputError
from miniautoml.processes import Command
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
) -> Command:
    """How to run the prediction server: the registry service in `bentos/`, or a built bento.
    The command's `env` is added to the caller's environment."""
    from miniautoml.adapters import bentoml as bentoml_adapter
    from miniautoml.config import PROJECT_ROOT

    if not 0 < port < 65536:
        raise UserInputError(f"--port {port}: expected 1..65535")
    env = bentoml_adapter.env(settings)
    if workers is not None:
        if workers < 1:
            raise UserInputError(f"--workers {workers}: expected at least 1")
        env["MINIAUTOML_WORKERS"] = str(workers)
    ServingOptions.from_env({**os.environ, **env})  # a bad knob fails here, not in every worker
    bentos_dir = PROJECT_ROOT / "bentos"
    target = bento or "service:PredictionService"
    argv = bentoml_adapter.serve_command(target, host, port, working_dir=None if bento else bentos_dir)
    return Command(argv=argv, cwd=str(bentos_dir), env=env)

