"""Hyper-parameter sweeps over training jobs (`miniautoml train sweep`): Optuna picks the
parameters, the jobs service trains each trial, the best trial's model is registered.

    plan = plan_sweep(settings, model_name="intent", data_path="a.csv", trials=6, parallel=2,
                      params={"lr": "tag(log, interval(1e-3, 1e-1))", "epochs": "2"})
    result = run_sweep(settings, plan)  # result.best_run_id, result.model_version, result.trials
"""

from miniautoml.sweeps.records import DEFAULT_METRIC, METRICS, SweepResult, TrialRecord
from miniautoml.sweeps.search_space import Dimension, SearchSpace, parse_search_space
from miniautoml.sweeps.service import SweepPlan, plan_sweep, run_sweep

__all__ = [
    "DEFAULT_METRIC",
    "METRICS",
    "Dimension",
    "SearchSpace",
    "SweepPlan",
    "SweepResult",
    "TrialRecord",
    "parse_search_space",
    "plan_sweep",
    "run_sweep",
]
