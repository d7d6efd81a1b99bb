"""Sweeps: many set-ups trained at once, on this machine or a Dask cluster, chosen by Optuna.

One job per module:

- `space`: what a sweep searches (Dimension, parse_dimension, SweepSpec), checked before it starts;
- `trial`: a trial on a Dask worker (TrialTask, run_trial) and the records it sends (Started,
  Progress with `backprop.run.Rows`, Report, TrialOutcome, LostAttempt);
- `cluster`: where trials run (a given scheduler, or a LocalCluster in its own process:
  `python -m backprop.sweep serve N`), connect, check_address;
- `study`: the Optuna study in its journal file (open_study, the lazy grid, TrialResult);
- `journal`: that file checked line by line before Optuna reads it, a torn last line set aside,
  one client per sweep (ClientLock);
- `admission`: what a sweep may take (local workers, memory), checked before it is recorded;
- `client`: `Sweep`, which runs a recorded sweep, each attempt at a trial one `backprop.run.Run`;
- `snapshot`: what the CLI and the app show (TrialView, SweepSnapshot, recorded_snapshot,
  importances).

The sweep itself is a row of the run store's sweeps table; each trial is a run (source "sweep").
"""

from .admission import MAX_WORKERS_VARIABLE, SweepCost, check_sweep, check_workers, max_workers
from .client import ResumeCheck, Sweep, check_resume, create_sweep, delete_sweep
from .cluster import WORKERS, check_address, connect, default_workers
from .journal import JournalDamage, check_journal
from .snapshot import SweepSnapshot, TrialView, importances, recorded_snapshot, view_of
from .space import (
    DEFAULT_TRIALS,
    MAX_TRIALS,
    PRUNERS,
    SAMPLER_SEED,
    STRATEGIES,
    TRIALS,
    Dimension,
    SweepSpec,
    parse_dimension,
)
from .study import GridOrder, TrialResult, grid_point, open_study, study_path
from .trial import LostAttempt, TrialOutcome, TrialTask, run_trial

__all__ = [
    "DEFAULT_TRIALS", "MAX_TRIALS", "MAX_WORKERS_VARIABLE", "PRUNERS", "SAMPLER_SEED", "STRATEGIES", "TRIALS",
    "WORKERS", "Dimension", "GridOrder", "JournalDamage", "LostAttempt", "ResumeCheck", "Sweep", "SweepCost",
    "SweepSnapshot", "SweepSpec", "TrialOutcome", "TrialResult", "TrialTask", "TrialView", "check_address",
    "check_journal", "check_resume", "check_sweep", "check_workers", "connect", "create_sweep",
    "default_workers", "delete_sweep", "grid_point", "importances", "max_workers", "open_study",
    "parse_dimension", "recorded_snapshot", "run_trial", "study_path", "view_of",
]
