"""The sweep's Optuna study: TPE, kept in a journal file next to the workspace's tracking data
(`.miniautoml/sweeps/<sweep_id>.journal`), so it outlives the process that ran the sweep."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from miniautoml.config import Settings

if TYPE_CHECKING:
    import optuna


def journal_path(settings: Settings, sweep_id: str) -> Path:
    path = settings.state_dir / "sweeps"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{sweep_id}.journal"


def create(settings: Settings, sweep_id: str, direction: str, trials: int, seed: int | None,
           prune: bool = False) -> "optuna.Study":
    """A new study named `sweep_id`. TPE samples at random for its first trials (a third of the
    budget, 2 to 10), then models the good ones; `constant_liar` keeps trials asked for while
    others still run from all landing on the same point. With `prune`, a median pruner: from
    its second epoch on, a trial below the median of earlier trials at that epoch stops (once two
    trials have reported)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # progress is ours, one line per trial
    storage = JournalStorage(JournalFileBackend(str(journal_path(settings, sweep_id))))
    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=max(2, min(10, trials // 3)), constant_liar=True
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2) if prune else optuna.pruners.NopPruner()
    return optuna.create_study(study_name=sweep_id, storage=storage, sampler=sampler, pruner=pruner, direction=direction)


def load(settings: Settings, sweep_id: str) -> "optuna.Study":
    """A sweep's study as it was stored (e.g. to read it after the sweep ended)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal_path(settings, sweep_id))))
    return optuna.load_study(study_name=sweep_id, storage=storage)
