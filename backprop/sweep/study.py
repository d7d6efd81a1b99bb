"""The sweep's Optuna study: kept in a journal file beside the run store, so a sweep outlives its
client (`backprop sweep --resume ID` continues it). Its sampler (grid, random, TPE) and pruner come
from the SweepSpec; what the journal keeps of an ended trial is a `TrialResult`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import paths
from .trial import LostAttempt

RESULT = "result"  # the user attribute that holds a TrialResult
REQUEUED = "requeued"  # a trial asked again under a new number (cancelled, or its client ended)


@dataclass(frozen=True)
class TrialResult:
    """What the journal keeps of an ended trial: written once, after its run is complete in the
    run store (so a trial Optuna knows as ended always has its run)."""

    status: str  # finished, pruned, failed, diverged, cancelled
    reason: str | None = None
    test_cost: float | None = None
    test_accuracy: float | None = None  # None for a task without classes
    train_accuracy: float | None = None
    seconds: float | None = None
    run_id: int | None = None  # the run of the attempt that ended it
    checkpoint: str | None = None  # its trained network (finished trials)
    lost: tuple = ()  # LostAttempt: attempts whose worker died before

    def to_attrs(self):
        return {"status": self.status, "reason": self.reason, "test_cost": finite(self.test_cost),
                "test_accuracy": finite(self.test_accuracy), "train_accuracy": finite(self.train_accuracy),
                "seconds": finite(self.seconds), "run": self.run_id, "checkpoint": self.checkpoint,
                "lost": [attempt.to_dict() for attempt in self.lost]}

    @classmethod
    def from_attrs(cls, attrs, default_status="failed"):
        """From the journal (a sweep recorded before runs and lost attempts were kept there reads
        with none)."""
        return cls(attrs.get("status", default_status), attrs.get("reason"), attrs.get("test_cost"),
                   attrs.get("test_accuracy"), attrs.get("train_accuracy"), attrs.get("seconds"),
                   attrs.get("run"), attrs.get("checkpoint"),
                   tuple(LostAttempt.from_dict(item) for item in attrs.get("lost", ())))


def finite(value):
    """A float, or None for a missing or non-finite one (a task without classes has NaN accuracy)."""
    return None if value is None or not math.isfinite(value) else float(value)


def result_of(frozen):
    """A recorded trial's TrialResult (None while it has none)."""
    attrs = frozen.user_attrs.get(RESULT)
    return None if attrs is None else TrialResult.from_attrs(attrs)


def requeued(frozen):
    return frozen.user_attrs.get(REQUEUED, False)


def study_path(sweep_id):
    folder = paths.studio_home() / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"sweep-{int(sweep_id)}.journal"


def open_study(sweep_id, spec=None, offset=0):
    """The sweep's Optuna study in its journal file (created when new)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(study_path(sweep_id))))
    if spec is None:
        return optuna.load_study(study_name=f"sweep-{sweep_id}", storage=storage)
    if spec.strategy == "grid":
        sampler = grid_sampler({d.name: list(d.choices()) for d in spec.space}, seed=spec.seed)
    elif spec.strategy == "random":
        sampler = optuna.samplers.RandomSampler(seed=spec.seed + offset)
    else:
        sampler = optuna.samplers.TPESampler(seed=spec.seed + offset, constant_liar=True,
                                             n_startup_trials=min(10, max(3, spec.total() // 3)))
    every = spec.report_every or 1
    reports = max(1, spec.base.iterations // every)
    if spec.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=every)
    elif spec.pruner == "halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=every * max(1, reports // 9),
                                                        reduction_factor=3)
    else:
        pruner = optuna.pruners.NopPruner()
    return optuna.create_study(study_name=f"sweep-{sweep_id}", storage=storage, sampler=sampler,
                               pruner=pruner, direction="minimize", load_if_exists=True)


def _grid_sampler_class():
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """GridSampler, whose after_trial ends an optimize() loop once the grid is done by calling
        study.stop(); with ask-and-tell there is no such loop (stop() raises) and the client counts
        the trials itself."""

        def after_trial(self, study, trial, state, values):
            pass

    return AskTellGridSampler


def grid_sampler(*args, **kwargs):
    """Optuna's GridSampler for ask-and-tell (a class made when optuna is imported)."""
    return _grid_sampler_class()(*args, **kwargs)


def study_to_run(sweep_id, spec):
    """The study a client asks from. A resumed sweep's: trials its ended client left running are
    asked again, (grid) every point not yet tried is queued, and the sampler's seed moves past the
    draws already made."""
    import itertools

    from optuna.trial import TrialState

    study = open_study(sweep_id, spec)
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return study
    study = open_study(sweep_id, spec, offset=len(trials))
    names = [d.name for d in spec.space]
    for frozen in trials:
        if frozen.state == TrialState.RUNNING:  # its client ended while it ran: ask it again
            study._storage.set_trial_user_attr(frozen._trial_id, REQUEUED, True)
            study.tell(frozen.number, state=TrialState.FAIL)
            if spec.strategy != "grid" and set(frozen.params) == set(names):
                study.enqueue_trial(frozen.params, skip_if_exists=False)
    if spec.strategy == "grid":
        # Every grid point not yet tried (or waiting) is queued: a trial killed before Optuna
        # recorded its values is found this way too.
        covered = {tuple(t.params.get(n) for n in names) for t in study.get_trials(deepcopy=False)
                   if t.state != TrialState.WAITING and not requeued(t)}
        covered |= {tuple(t.system_attrs.get("fixed_params", {}).get(n) for n in names)
                    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
        for point in itertools.product(*(d.choices() for d in spec.space)):
            if point not in covered:
                study.enqueue_trial(dict(zip(names, point, strict=True)))
    return study
