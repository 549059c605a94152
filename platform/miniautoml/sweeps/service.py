"""`train sweep`: a hyper-parameter search over training jobs.

Optuna (TPE) picks each trial's parameters; each trial is a job of the jobs service (the local
runner or Ray, as `submit` would choose) whose run is nested under the sweep's parent run
(`mlflow.parentRunId`), at most `parallel` at once. Trials register no model: the best trial's
model alone becomes a version of the model name, tagged with the sweep id. The sweep id is the
parent run's id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from miniautoml.config import Settings
from miniautoml.errors import MiniAutoMLError, UserInputError
from miniautoml.jobs import store
from miniautoml.jobs.progress import EpochReader
from miniautoml.sweeps import records
from miniautoml.sweeps.records import SweepResult, TrialRecord
from miniautoml.sweeps.search_space import SearchSpace, parse_search_space

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

    from miniautoml.datasets.version_hash import VersionHash
    from miniautoml.jobs.requests import JobRequest

KIND_SWEEP = "sweep"  # the parent run's miniautoml.kind (jobs are "training-job")
PARENT_TAG = "mlflow.parentRunId"  # MLflow's nesting: the UI shows trials under the sweep
SWEEP_ID_TAG = "miniautoml.sweep_id"  # on each trial's run and on the registered version
TRIAL_TAG = "miniautoml.sweep_trial"  # the trial's number
BEST_RUN_TAG, BEST_TRIAL_TAG = "miniautoml.sweep.best_run_id", "miniautoml.sweep.best_trial"
LINEAGE_TAGS = ("snapshot_md5", "dataset_id", "version_hash")  # copied from the trial's run, as the trainer would
SUMMARY_ARTIFACT = "sweep.json"
PRUNED_TAG = "miniautoml.sweep.pruned_after_epoch"  # on a trial's run the pruner stopped
REVIVE_SECONDS = 15.0  # how often a sweep checks that its queued trials have a runner


@dataclass(frozen=True)
class SweepPlan:
    """A sweep validated completely before anything is created."""

    request: "JobRequest"  # the training request with the fixed parameters
    space: SearchSpace
    trials: int
    parallel: int
    backend: str
    metric: str
    direction: str
    alias: str | None
    seed: int | None
    prune: bool = False  # stop trials whose per-epoch val_accuracy trails the median (Optuna)


def plan_sweep(
    settings: Settings,
    *,
    model_name: str | None,
    params: dict[str, str],
    trials: int,
    parallel: int,
    dataset_id: str | None = None,
    version_hash: VersionHash | str | None = None,
    data_path: str | None = None,
    algorithm: str | None = None,
    backend: str | None = None,
    metric: str | None = None,
    alias: str | None = None,
    seed: int | None = None,
    prune: bool = False,
) -> SweepPlan:
    """Check everything a sweep needs (search space against the documented parameters, each
    bound and choice against the composed config, dataset, metric, alias, backend); raises
    UserInputError/NotFoundError naming the bad argument."""
    from miniautoml import registry
    from miniautoml.jobs import backends
    from miniautoml.jobs.requests import build_request, with_params

    if trials < 1:
        raise UserInputError(f"--trials {trials}: expected at least 1")
    if parallel < 1:
        raise UserInputError(f"--parallel {parallel}: expected at least 1")
    metric = (metric or records.DEFAULT_METRIC).strip()
    direction = records.direction_of(metric)
    alias = registry.check_alias(alias) if alias is not None else None
    if prune and direction != records.MAXIMIZE:
        raise UserInputError(f"--prune judges trials by their epochs' {records.PRUNE_METRIC}: it needs a maximised --metric, not {metric}")
    space = parse_search_space(params)
    request = build_request(
        settings, model_name=model_name, dataset_id=dataset_id, version_hash=version_hash,
        algorithm=algorithm, params=space.fixed, data_path=data_path,
    )
    for dim in space.searched:  # each bound and choice with the other parameters at their defaults
        for value in dim.candidates():
            try:
                with_params(request, request.params | {dim.key: value})
            except UserInputError as exc:
                raise UserInputError(f"{dim.argument}: {exc}") from None
    backend = backends.choose(settings, backend)
    if backend == backends.RAY:
        backends.RayBackend.connect(settings, dataset=not request.data_path)  # no cluster: one line, nothing created
    return SweepPlan(request, space, trials, min(parallel, trials), backend, metric, direction, alias, seed, prune)


def run_sweep(
    settings: Settings,
    plan: SweepPlan,
    *,
    on_start: Callable[[str], None] | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    poll: float = 1.0,
) -> SweepResult:
    """Run the planned sweep to its end. Interrupted (KeyboardInterrupt, e.g. the CLI's SIGTERM
    handler), it cancels its running trials, ends the parent run KILLED and re-raises."""
    from miniautoml.adapters import mlflow as mlflow_adapter
    from miniautoml.sweeps import study as study_mod

    client = mlflow_adapter.client(settings)
    experiment_id = mlflow_adapter.ensure_experiment(settings)
    sweep_id = _create_parent(client, experiment_id, plan)
    try:
        study = study_mod.create(settings, sweep_id, plan.direction, plan.trials, plan.seed, plan.prune)
    except Exception as exc:
        _end_parent(client, sweep_id, "FAILED", f"error: could not create the Optuna study: {exc}")
        raise
    if on_start is not None:
        on_start(sweep_id)
    result = SweepResult(
        sweep_id=sweep_id, status="RUNNING", metric=plan.metric, direction=plan.direction,
        model_name=plan.request.model_name, best_run_id=None, best_value=None, model_version=None,
        alias=plan.alias, backend=plan.backend, study=str(study_mod.journal_path(settings, sweep_id)),
    )
    trials = _Trials(_trial_settings(settings, plan), client, plan, study, sweep_id, result, on_trial)
    try:
        trials.run(poll)
    except BaseException as exc:
        trials.cancel_running()
        interrupted = isinstance(exc, KeyboardInterrupt)
        result.status = "KILLED" if interrupted else "FAILED"
        message = "sweep interrupted; its running trials were cancelled" if interrupted else f"error: {exc}"
        _end_parent(client, sweep_id, result.status, message, result)
        raise
    try:
        _finish(settings, client, plan, result)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        result.status = "KILLED" if interrupted else "FAILED"
        _end_parent(client, sweep_id, result.status, "sweep interrupted" if interrupted else f"error: {exc}", result)
        raise
    return result


# --- trials -----------------------------------------------------------------------------------
class _Trials:
    """Asks Optuna for trials, submits each as a job, tells Optuna how each ended."""

    def __init__(self, settings: Settings, client: "MlflowClient", plan: SweepPlan, study: "optuna.Study",
                 sweep_id: str, result: SweepResult, on_trial: Callable[[TrialRecord], None] | None) -> None:
        self.settings, self.client, self.plan, self.study = settings, client, plan, study
        self.sweep_id, self.result, self.on_trial = sweep_id, result, on_trial
        self.distributions = plan.space.distributions()
        self.running: dict[str, tuple["optuna.trial.Trial", dict[str, str]]] = {}
        self.epochs: dict[str, EpochReader] = {}  # with --prune: each running trial's epochs
        self.asked = 0

    def run(self, poll: float) -> None:
        from miniautoml.jobs import job_status

        revived = time.monotonic()
        while self.asked < self.plan.trials or self.running:
            while self.asked < self.plan.trials and len(self.running) < self.plan.parallel:
                self._start()
            for job_id in list(self.running):
                self._check(job_id)
            if self.running and time.monotonic() - revived > REVIVE_SECONDS:
                job_status(self.settings, next(iter(self.running)))  # a runner if one died
                revived = time.monotonic()
            if self.running:
                time.sleep(poll)

    def _start(self) -> None:
        from miniautoml.jobs import submit_job

        trial = self.study.ask(self.distributions)
        self.asked += 1
        params = self.plan.space.params_of(trial.params)
        request = self.plan.request
        try:
            job_id = submit_job(
                self.settings, model_name=request.model_name, dataset_id=request.dataset_id or None,
                version_hash=request.version_hash, data_path=request.data_path or None,
                algorithm=request.algorithm, params=params, backend=self.plan.backend, register=False,
                extra_tags={PARENT_TAG: self.sweep_id, SWEEP_ID_TAG: self.sweep_id, TRIAL_TAG: str(trial.number)},
            )
        except MiniAutoMLError as exc:  # e.g. two sampled values that do not go together
            self._record(trial, TrialRecord(trial.number, None, records.FAILURE, None, params, f"not submitted: {exc}"))
            return
        trial.set_user_attr("run_id", job_id)
        self.running[job_id] = (trial, params)
        if self.plan.prune:
            self.epochs[job_id] = EpochReader(self.client)

    def _check(self, job_id: str) -> None:
        from miniautoml.jobs import ended_job

        job = ended_job(self.settings, job_id)
        if job is None:
            if job_id in self.epochs:
                self._maybe_prune(job_id)
            return
        self.epochs.pop(job_id, None)
        trial, params = self.running.pop(job_id)
        value, message = None, job.message
        if job.status == store.SUCCEED:
            value = self.client.get_run(job_id).data.metrics.get(self.plan.metric)
            if value is None:
                message = f"finished without logging {self.plan.metric}"
        status = records.SUCCEED if value is not None else records.FAILURE
        self._record(trial, TrialRecord(trial.number, job_id, status, value, params, message))

    def _maybe_prune(self, job_id: str) -> None:
        """Report the trial's new epochs to Optuna; cancel it if the pruner says so."""
        from miniautoml.jobs import cancel_job

        trial, params = self.running[job_id]
        for epoch in self.epochs[job_id].read(self.client.get_run(job_id)):
            value = epoch.metrics.get(records.PRUNE_METRIC)
            if value is None:
                continue
            trial.report(value, epoch.epoch)
            if trial.should_prune():
                try:
                    cancel_job(self.settings, job_id)
                except MiniAutoMLError:  # it ended meanwhile: pruned all the same
                    pass
                store.set_tags(self.client, job_id, {PRUNED_TAG: str(epoch.epoch)})
                self.running.pop(job_id)
                self.epochs.pop(job_id)
                message = f"pruned after epoch {epoch.epoch}: {records.PRUNE_METRIC} {value:.4f} below the median"
                self._record(trial, TrialRecord(trial.number, job_id, records.PRUNED, None, params, message))
                return

    def _record(self, trial: "optuna.trial.Trial", record: TrialRecord) -> None:
        from optuna.trial import TrialState

        if record.value is not None:
            self.study.tell(trial, record.value)
        else:
            self.study.tell(trial, state=TrialState.PRUNED if record.status == records.PRUNED else TrialState.FAIL)
        self.result.trials.append(record)
        if record.value is not None:
            self.client.log_metric(self.sweep_id, "trial_value", record.value, step=record.number)
            best = _best(self.result)
            if best is not None:
                self.client.log_metric(self.sweep_id, "best_value", best.value, step=record.number)  # type: ignore[arg-type]
        if self.on_trial is not None:
            self.on_trial(record)

    def cancel_running(self) -> None:
        """Cancel the trials still running, each recorded as a failure."""
        from miniautoml.jobs import cancel_job

        for job_id, (trial, params) in list(self.running.items()):
            try:
                cancel_job(self.settings, job_id)
            except MiniAutoMLError:  # it ended meanwhile
                pass
            self.running.pop(job_id)
            self._record(trial, TrialRecord(trial.number, job_id, records.FAILURE, None, params, "cancelled: the sweep was interrupted"))


def _trial_settings(settings: Settings, plan: SweepPlan) -> Settings:
    """On the local backend, runners for `parallel` jobs at once: the settings the trials are
    submitted with raise `max_runners` to `parallel` when the workspace allows fewer, and the
    runners they start inherit it (`Settings.tool_env`). 0 (queue without launching) stays 0."""
    from miniautoml.jobs import backends, slots

    current = slots.max_runners(settings)
    if plan.backend != backends.LOCAL or current == 0 or current >= plan.parallel:
        return settings
    return settings.with_value(slots.MAX_RUNNERS, plan.parallel)


# --- the parent run ---------------------------------------------------------------------------
def _create_parent(client: "MlflowClient", experiment_id: str, plan: SweepPlan) -> str:
    from miniautoml.adapters import mlflow as mlflow_adapter

    request = plan.request
    tags = {
        store.KIND: KIND_SWEEP,
        "miniautoml.sweep.model_name": request.model_name,
        "miniautoml.sweep.metric": plan.metric,
        store.MESSAGE: f"sweep: {plan.trials} trials, {plan.parallel} at once",
    }
    run = client.create_run(experiment_id, tags=tags, run_name=f"sweep of {request.model_name}")
    params = plan.space.described() | {
        "sweep.trials": str(plan.trials), "sweep.parallel": str(plan.parallel), "sweep.metric": plan.metric,
        "sweep.direction": plan.direction, "sweep.backend": plan.backend, "sweep.algorithm": request.algorithm,
        "sweep.seed": "" if plan.seed is None else str(plan.seed), "sweep.prune": str(plan.prune).lower(),
        "sweep.data": request.data_path or f"{request.dataset_id} {request.version_hash}",
    }
    mlflow_adapter.log_params(client, run.info.run_id, {k: v[:6000] for k, v in params.items()})
    return run.info.run_id


def _end_parent(client: "MlflowClient", sweep_id: str, status: str, message: str,
                result: SweepResult | None = None) -> None:
    store.set_tags(client, sweep_id, {store.MESSAGE: message})
    if result is not None:
        client.log_dict(sweep_id, asdict(result), SUMMARY_ARTIFACT)
    client.set_terminated(sweep_id, status)


def _best(result: SweepResult) -> TrialRecord | None:
    scored = [t for t in result.trials if t.value is not None]
    if not scored:
        return None
    sign = 1 if result.direction == records.MAXIMIZE else -1
    return max(scored, key=lambda t: (sign * t.value, -t.number))  # type: ignore[operator]


def _finish(settings: Settings, client: "MlflowClient", plan: SweepPlan, result: SweepResult) -> None:
    """Register the best trial's model (tagged with the sweep), move the alias, end the parent."""
    from miniautoml import registry

    best = _best(result)
    if best is None:
        result.status = "FAILED"
        _end_parent(client, result.sweep_id, "FAILED", f"every trial failed ({len(result.trials)})", result)
        return
    assert best.run_id is not None and best.value is not None
    run_tags = client.get_run(best.run_id).data.tags
    tags = {"run_id": best.run_id, "algorithm": plan.request.algorithm, SWEEP_ID_TAG: result.sweep_id}
    tags |= {k: run_tags[k] for k in LINEAGE_TAGS if run_tags.get(k)}
    version = registry.register_run_model(settings, best.run_id, plan.request.model_name, tags)
    store.set_tags(client, best.run_id, {store.MODEL_NAME: version.name, store.MODEL_VERSION: version.version})
    if plan.alias:  # through the gate: with a golden set, the alias moves only if the best trial passes
        from miniautoml.evaluation.promotion import promote

        promoted = promote(settings, version.name, version.version, plan.alias)
        result.gate, result.gate_failed = promoted.gate, promoted.failed
    result.best_run_id, result.best_value, result.model_version = best.run_id, best.value, version.version
    result.status = "FINISHED"
    store.set_tags(client, result.sweep_id, {BEST_RUN_TAG: best.run_id, BEST_TRIAL_TAG: str(best.number),
                                             "miniautoml.sweep.model_version": version.version})
    failed = sum(t.status == records.FAILURE for t in result.trials)
    pruned = sum(t.status == records.PRUNED for t in result.trials)
    message = (f"best {plan.metric} {best.value:.4f} (trial {best.number}); "
               f"registered {version.name} version {version.version}" + (f"; {failed} trial(s) failed" if failed else "")
               + (f"; {pruned} pruned" if pruned else "")
               + (f"; the gate refused @{plan.alias} ({'; '.join(result.gate_failed)})" if result.gate == "failed" else ""))
    _end_parent(client, result.sweep_id, "FINISHED", message, result)
