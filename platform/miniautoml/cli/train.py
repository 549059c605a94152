"""`miniautoml train ...`: the book's training service (jobs queued as MLflow runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from miniautoml.cli.common import parse_pairs, settings_of
from miniautoml.cli.output import emit, info
from miniautoml.errors import UserInputError

if TYPE_CHECKING:
    from miniautoml.datasets.version_hash import VersionHash


@click.group("train")
def train() -> None:
    """Training jobs: submit, follow, list, cancel, sweep. A job id is its MLflow run id."""


def _finish(job) -> None:  # type: ignore[no-untyped-def]
    emit(job)
    if job.status == "failure":
        sys.exit(1)


class _EpochProgress:
    """Training progress on stderr while waiting: a tqdm bar (epoch, loss, val accuracy) on a
    terminal; one line per epoch otherwise (logs, CI)."""

    def __init__(self) -> None:
        self.bar = None
        self.tty = sys.stderr.isatty()

    def __call__(self, epoch) -> None:  # type: ignore[no-untyped-def]
        if not self.tty:
            info(epoch.line())
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=epoch.total, initial=epoch.epoch - 1, unit="epoch", desc="training",
                            file=sys.stderr, dynamic_ncols=True, leave=True)
        if epoch.total and epoch.epoch > self.bar.total:
            self.bar.total = epoch.epoch
        self.bar.set_postfix({k: round(v, 4) for k, v in epoch.metrics.items()}, refresh=False)
        self.bar.update(epoch.epoch - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _wait(ctx: click.Context, job_id: str, timeout: float | None):  # type: ignore[no-untyped-def]
    from miniautoml.jobs import wait_job

    progress = _EpochProgress()
    try:
        return wait_job(settings_of(ctx), job_id, timeout=timeout, on_epoch=progress)
    except KeyboardInterrupt:
        progress.close()
        info(f"stopped waiting; job {job_id} goes on (miniautoml train status {job_id})")
        raise
    finally:
        progress.close()


def _read_snapshot(path: str, dataset_id: str | None, version_hash: str | None) -> tuple[str, "VersionHash"]:
    """`dataset_id` and the parsed `version_hash` of a `dataset prepare` JSON file."""
    import json

    from miniautoml.datasets.version_hash import parse as parse_version_hash

    if dataset_id or version_hash:
        raise UserInputError("--snapshot replaces --dataset/--version-hash: give one or the other")
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        dataset_id, text = str(record["dataset_id"]), record["version_hash"]
        if not isinstance(text, str):
            raise TypeError("version_hash is not a string")
    except FileNotFoundError:
        raise UserInputError(f"{path}: file not found") from None
    except (ValueError, KeyError, TypeError):
        raise UserInputError(f"{path}: not a `dataset prepare` JSON (needs dataset_id and version_hash)") from None
    try:
        return dataset_id, parse_version_hash(text)
    except UserInputError as exc:
        raise UserInputError(f"{path}: {exc}") from None


@train.command("submit")
@click.option("--dataset", "dataset_id", default=None, metavar="DATASET", help="Dataset id or name.")
@click.option("--version-hash", default=None, metavar="HASH", help="Dataset version (from `dataset prepare`).")
@click.option("--snapshot", "snapshot_file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Take --dataset and --version-hash from a `dataset prepare` JSON file (dvc.yaml uses it).")
@click.option("--model-name", default=None, metavar="NAME", help="Registered model that gets the new version.")
@click.option("--algorithm", default="intent-classification", show_default=True,
              help="Training algorithm (`miniautoml algorithms list`).")
@click.option("-P", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Training parameter (Hydra override, repeatable), e.g. -P epochs=5 -P model=book.")
@click.option("--data-path", default=None, hidden=True,
              help="Train from CSV file(s) (text,label) instead of a dataset version.")
@click.option("--backend", default=None, metavar="local|ray",
              help="Where the job runs: the local runner or a Ray cluster (`miniautoml cluster up`) "
                   "[env MINIAUTOML_JOBS_BACKEND, else [jobs] backend, else local].")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the job to end; print its final status.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")
@click.pass_context
def submit(ctx: click.Context, dataset_id: str | None, version_hash: str | None, snapshot_file: str | None,
           model_name: str | None, algorithm: str, params: tuple[str, ...], data_path: str | None,
           backend: str | None, wait_: bool, timeout: float | None) -> None:
    """Queue a training job; prints {"job_id": ...}."""
    from miniautoml.datasets.version_hash import parse as parse_version_hash
    from miniautoml.jobs import submit_job

    vhash: VersionHash | None = None
    if snapshot_file:
        dataset_id, vhash = _read_snapshot(snapshot_file, dataset_id, version_hash)
    elif version_hash and version_hash.strip():
        vhash = parse_version_hash(version_hash)  # parsed here, once: a malformed hash stops before a job
    job_id = submit_job(
        settings_of(ctx), model_name=model_name, dataset_id=dataset_id,
        version_hash=vhash,
        algorithm=algorithm, params=parse_pairs(params, "-P"), data_path=data_path, backend=backend,
    )
    if not wait_:
        emit({"job_id": job_id})
        return
    info(f"job {job_id} queued; waiting for it to end")
    _finish(_wait(ctx, job_id, timeout))


class _TrialProgress:
    """One stderr line per finished trial."""

    def __init__(self, trials: int, metric: str) -> None:
        self.trials, self.metric, self.done = trials, metric, 0

    def started(self, sweep_id: str) -> None:
        info(f"sweep {sweep_id}: {self.trials} trial(s); Ctrl-C cancels the running ones")

    def __call__(self, trial) -> None:  # type: ignore[no-untyped-def]
        self.done += 1
        value = f"{self.metric}={trial.value:.4f}" if trial.value is not None else trial.message
        params = " ".join(f"{k}={v}" for k, v in trial.params.items())
        info(f"trial {self.done}/{self.trials} {trial.status}: {value} [{params}] run {trial.run_id or '-'}")


def _interrupt_on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # the sweep cancels its trials and ends KILLED, as on Ctrl-C


@train.command("sweep")
@click.option("--dataset", "dataset_id", default=None, metavar="DATASET", help="Dataset id or name.")
@click.option("--version-hash", default=None, metavar="HASH", help="Dataset version (from `dataset prepare`).")
@click.option("--data-path", default=None, hidden=True, help="Train from CSV file(s) (text,label).")
@click.option("--model-name", default=None, metavar="NAME", help="Registered model that gets the best trial's version.")
@click.option("--algorithm", default="intent-classification", show_default=True, help="Training algorithm.")
@click.option("-P", "--param", "params", multiple=True, metavar="KEY=EXPR",
              help="Search space (repeatable): interval(a,b), int(interval(a,b)), tag(log, interval(a,b)), "
                   "choice(a,b,c) or a fixed value, e.g. -P 'lr=tag(log, interval(1e-3, 1e-1))'.")
@click.option("--trials", type=int, default=10, show_default=True, help="Trials (training jobs) in all.")
@click.option("--parallel", type=int, default=1, show_default=True, help="Trials running at once.")
@click.option("--metric", default=None, metavar="NAME",
              help="Run metric to optimise [default: best_val_accuracy, maximised; *loss minimised].")
@click.option("--alias", default=None, metavar="ALIAS", help="Point ALIAS at the best trial's version.")
@click.option("--seed", type=int, default=None, help="Seed of the sampler (TPE), for a repeatable search.")
@click.option("--prune", is_flag=True, help="Stop trials whose per-epoch val_accuracy trails the median (Optuna).")
@click.option("--backend", default=None, metavar="local|ray", help="Where trials run (as for `train submit`).")
@click.pass_context
def sweep(ctx: click.Context, dataset_id: str | None, version_hash: str | None, data_path: str | None,
          model_name: str | None, algorithm: str, params: tuple[str, ...], trials: int, parallel: int,
          metric: str | None, alias: str | None, seed: int | None, prune: bool, backend: str | None) -> None:
    """Search training parameters with Optuna (TPE): each trial is a training job nested under
    the sweep's run; the best trial's model is registered. Prints the sweep; exit 1 if every
    trial failed."""
    import signal

    from miniautoml.datasets.version_hash import parse as parse_version_hash
    from miniautoml.sweeps import plan_sweep, run_sweep

    settings = settings_of(ctx)
    vhash = parse_version_hash(version_hash) if version_hash and version_hash.strip() else None
    plan = plan_sweep(
        settings, model_name=model_name, params=parse_pairs(params, "-P"), trials=trials, parallel=parallel,
        dataset_id=dataset_id, version_hash=vhash, data_path=data_path, algorithm=algorithm,
        backend=backend, metric=metric, alias=alias, seed=seed, prune=prune,
    )
    progress = _TrialProgress(plan.trials, plan.metric)
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        result = run_sweep(settings, plan, on_start=progress.started, on_trial=progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    emit(result)
    if result.status != "FINISHED":
        sys.exit(1)


@train.command("status")
@click.argument("job_id", metavar="JOB")
@click.pass_context
def status(ctx: click.Context, job_id: str) -> None:
    """Status of JOB: queuing, launch, running, succeed or failure."""
    from miniautoml.jobs import job_status

    emit(job_status(settings_of(ctx), job_id))


@train.command("list")
@click.option("--status", "status_", default=None,
              type=click.Choice(["queuing", "launch", "running", "succeed", "failure"]), help="Only jobs in this status.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.pass_context
def list_(ctx: click.Context, status_: str | None, limit: int) -> None:
    """Jobs, newest first."""
    from miniautoml.jobs import list_jobs

    emit(list_jobs(settings_of(ctx), status=status_, limit=limit))


@train.command("wait")
@click.argument("job_id", metavar="JOB")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds (exit 124).")
@click.pass_context
def wait(ctx: click.Context, job_id: str, timeout: float | None) -> None:
    """Wait for JOB to end; print its status; exit 1 if it failed."""
    _finish(_wait(ctx, job_id, timeout))


@train.command("cancel")
@click.argument("job_id", metavar="JOB")
@click.pass_context
def cancel(ctx: click.Context, job_id: str) -> None:
    """Cancel JOB: a queued job never starts, a running one is stopped (ends as failure)."""
    from miniautoml.jobs import cancel_job

    emit(cancel_job(settings_of(ctx), job_id))


@train.command("logs")
@click.argument("job_id", metavar="JOB")
@click.pass_context
def logs(ctx: click.Context, job_id: str) -> None:
    """Print JOB's output so far (Ray's job logs for a job on Ray)."""
    from miniautoml.jobs import job_logs

    click.echo(job_logs(settings_of(ctx), job_id), nl=False)


@train.command("runner", hidden=True)
@click.option("--stop", is_flag=True, help="Stop the workspace's runners instead.")
@click.pass_context
def runner(ctx: click.Context, stop: bool) -> None:
    """Run queued jobs in the foreground until the queue is empty."""
    settings = settings_of(ctx)
    if stop:
        from miniautoml.jobs import stop_runners

        emit({"stopped": stop_runners(settings)})
        return
    from miniautoml.jobs import runner as runner_mod

    emit({"jobs_run": runner_mod.main(settings)})


commands = {"train": train}
