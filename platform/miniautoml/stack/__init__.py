"""The local stack of one workspace: MLflow tracking server + UI, the BentoML prediction service
and, on request, an S3-compatible server, run as background processes.

`up` starts what is not running yet and waits until each service answers its health endpoint;
`down` stops exactly what `up` started; `status` reports it. What runs is recorded in one JSON
pid file per service in `<workspace>/.miniautoml/stack/<name>.json` (`miniautoml.processes`: the
pid plus the process's start time and command line, so a pid the OS has since reused for another
process is never signalled). Each service runs in its own session (process group); `down` sends
SIGTERM to the group, then SIGKILL to the group and every descendant left after a grace period.
Logs go to `<workspace>/.miniautoml/stack/<name>.log`.

  services  what each service runs (command, environment, port, readiness URL)
  control   `up`, `down`, `status`; `start_prediction_service` (also the lab's server)
  storage   the workspace's storage switched to the stack's S3 server and back
"""

from miniautoml.stack.control import down, start_prediction_service, status, up
from miniautoml.stack.services import StackError, StackOptions

__all__ = ["StackError", "StackOptions", "down", "start_prediction_service", "status", "up"]
