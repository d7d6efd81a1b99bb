"""The sweep's Optuna study: kept in a journal file beside the run store, so a sweep outlives its
client (`backprop sweep --resume ID` continues it). Its sampler (grid, random, TPE) and pruner come
from the SweepSpec; what the journal keeps of an ended trial is a `TrialResult`.

The journal is read through backprop.sweep.journal's checks (a damaged line is an InputError naming
the file and the line). A grid is never built: its size is a product of counts (SweepSpec.build
refuses one over MAX_TRIALS without --trials), `GridOrder` gives its k-th point in a stable order
the seed chooses, and `LazyGridSampler` asks the next point no trial has taken, so a 64^4 grid with
--trials 2 costs two points, and a resumed grid queues nothing in advance.
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass

from .. import paths
from ..errors import InputError
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
    train_cost: float | None = None
    value: float | None = None  # the sweep's metric (what Optuna was told of a finished trial)

    def to_attrs(self):
        return {"status": self.status, "reason": self.reason, "test_cost": finite(self.test_cost),
                "test_accuracy": finite(self.test_accuracy), "train_accuracy": finite(self.train_accuracy),
                "train_cost": finite(self.train_cost), "value": finite(self.value),
                "seconds": finite(self.seconds), "run": self.run_id, "checkpoint": self.checkpoint,
                "lost": [attempt.to_dict() for attempt in self.lost]}

    @classmethod
    def from_attrs(cls, attrs, default_status="failed"):
        """From the journal (a sweep recorded before runs and lost attempts were kept there reads
        with none)."""
        return cls(attrs.get("status", default_status), attrs.get("reason"), attrs.get("test_cost"),
                   attrs.get("test_accuracy"), attrs.get("train_accuracy"), attrs.get("seconds"),
                   attrs.get("run"), attrs.get("checkpoint"),
                   tuple(LostAttempt.from_dict(item) for item in attrs.get("lost", ())),
                   attrs.get("train_cost"), attrs.get("value"))


def finite(value):
    """A float, or None for a missing or non-finite one (a task without classes has NaN accuracy)."""
    return None if value is None or not math.isfinite(value) else float(value)


def result_of(frozen):
    """A recorded trial's TrialResult (None while it has none)."""
    attrs = frozen.user_attrs.get(RESULT)
    return None if attrs is None else TrialResult.from_attrs(attrs)


def requeued(frozen):
    return frozen.user_attrs.get(REQUEUED, False)


def study_path(sweep_id, create_folder=True):
    folder = paths.studio_home() / "sweeps"
    if create_folder:
        folder.mkdir(parents=True, exist_ok=True)
    return folder / f"sweep-{int(sweep_id)}.journal"


def as_journaled(sweep_id, spec):
    """The spec as the sweep's journal keeps its lists of numbers: as text in a journal written
    before they were kept as numbers (backprop.sweep.journal.as_recorded), so a resumed client asks
    Optuna with the choices its study has."""
    from .journal import as_recorded

    return as_recorded(study_path(sweep_id, create_folder=False), sweep_id, spec)


def _recorded_spec(sweep_id):
    from ..runs import RunStore
    from .space import SweepSpec

    return SweepSpec.from_dict(RunStore().get_sweep(sweep_id)["spec"])


def open_study(sweep_id, spec=None, offset=0, covered=()):
    """The sweep's Optuna study in its journal file, every line checked as it is read
    (backprop.sweep.journal: a damaged line is an InputError "journal" naming the file and line).

    Without `spec`: the recorded study, read only (the spec comes from the run store); a sweep
    with no study yet (refused before it started, or never run) is InputError("sweep", "... has
    no trials yet"), and no file is made. With `spec`: the study a client runs, created when new;
    a grid's sampler skips the points `covered` (see study_to_run)."""
    import optuna
    from optuna.storages.journal import JournalStorage

    from .journal import checked_journal

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"sweep-{sweep_id}"
    if spec is None:
        path = study_path(sweep_id, create_folder=False)
        if not path.exists():
            raise InputError("sweep", f"sweep {sweep_id} has no trials yet")
        storage = JournalStorage(checked_journal(path, sweep_id, _recorded_spec(sweep_id)))
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # an empty journal: the study was never written
            raise InputError("sweep", f"sweep {sweep_id} has no trials yet") from None
    spec = as_journaled(sweep_id, spec)
    storage = JournalStorage(checked_journal(study_path(sweep_id), sweep_id, spec, create=True))
    every = spec.report_every or 1
    reports = max(1, spec.base.iterations // every)
    if spec.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=every)
    elif spec.pruner == "halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=every * max(1, reports // 9),
                                                        reduction_factor=3)
    elif spec.pruner == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=every, max_resource=spec.base.iterations,
                                                reduction_factor=3)
    else:
        pruner = optuna.pruners.NopPruner()
    study = optuna.create_study(study_name=name, storage=storage, sampler=make_sampler(spec, offset, covered),
                                pruner=pruner, direction=spec.direction, load_if_exists=True)
    if study.metric_names != [spec.metric]:  # optuna-dashboard shows the metric's name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # set_metric_names is experimental
            study.set_metric_names([spec.metric])
    return study


def sync_journal(study):
    """Make the journal lines a client's study wrote so far durable (one fsync; see
    backprop.sweep.journal.CheckedJournal.sync). Nothing for another storage."""
    backend = getattr(getattr(study, "_storage", None), "_backend", None)
    if hasattr(backend, "sync"):
        backend.sync()


def make_sampler(spec, offset=0, covered=()):
    """The spec's sampler: the lazy grid (skipping the points `covered`), or random or TPE seeded
    `offset` past the sweep's seed (a resumed sweep's draws differ from those already made)."""
    import optuna

    if spec.strategy == "grid":
        return LazyGridSampler(spec, covered=covered)
    if spec.strategy == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed + offset)
    return optuna.samplers.TPESampler(seed=spec.seed + offset, constant_liar=True,
                                      n_startup_trials=min(10, max(3, spec.total() // 3)))


# -- the grid, never built ------------------------------------------------------------------------
class GridOrder:
    """A grid's points in a stable order the seed chooses, one at a time and never all at once:
    the k-th is the grid point whose mixed-radix number (the last setting's values counting
    fastest) is (a*k + c) mod N, with a coprime to N, so k -> point is a permutation of the N
    points, computed with Python integers for any N (64 values of 10 settings: 64**10 points)."""

    def __init__(self, sizes, seed):
        self.sizes = tuple(int(n) for n in sizes)
        self.size = math.prod(self.sizes)
        rng = random.Random(int(seed))
        self.a, self.c = 1, 0
        if self.size > 1:
            self.a = rng.randrange(1, self.size)
            while math.gcd(self.a, self.size) != 1:  # a few tries: most numbers are coprime to N
                self.a = rng.randrange(1, self.size)
            self.c = rng.randrange(self.size)

    def __len__(self):
        return self.size

    def point(self, k):
        """The k-th point as a tuple of value indices, one per setting (0 <= k < N)."""
        number = (self.a * int(k) + self.c) % self.size
        indices = []
        for size in reversed(self.sizes):
            number, index = divmod(number, size)
            indices.append(index)
        return tuple(reversed(indices))


def grid_point(spec, k):
    """The k-th set-up of a grid sweep in its stable order: {setting: choice text}."""
    order = GridOrder([len(d.values) for d in spec.space], spec.seed)
    indices = order.point(k)
    return {d.name: d.choices()[i] for d, i in zip(spec.space, indices, strict=True)}


def _lazy_grid_sampler_class():
    import optuna

    class LazyGridSampler(optuna.samplers.BaseSampler):
        """A grid sweep's sampler: each new trial takes the next point of GridOrder that no trial
        has taken (a trial asked again with fixed parameters takes its own), so a grid of any size
        costs memory only for the points tried. A resumed sweep passes the points its journal's
        trials cover (`covered`); the same seed gives the same order, so the first trials of a
        grid larger than its --trials are the same set-ups each time."""

        def __init__(self, spec, covered=()):
            self._spec = spec
            self._names = [d.name for d in spec.space]
            self._choices = [d.choices() for d in spec.space]
            self._order = GridOrder([len(c) for c in self._choices], spec.seed)
            self._covered = set(covered)  # points (tuples of choice texts) taken
            self._cursor = 0
            self._points = {}  # trial id -> its point, until its parameters are set

        def _next_point(self):
            size = len(self._order)
            while self._cursor < size:
                indices = self._order.point(self._cursor)
                self._cursor += 1
                point = _distinct_point(self._spec, indices)
                if point is not None and point not in self._covered:
                    self._covered.add(point)
                    return point
            # Every point is taken (a client asked past the grid's size): run the first again.
            k = 0
            while _distinct_point(self._spec, self._order.point(k)) is None:
                k += 1
            return _distinct_point(self._spec, self._order.point(k))

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def before_trial(self, study, trial):
            if "fixed_params" in trial.system_attrs:  # asked again: its own point
                return
            self._points[trial._trial_id] = self._next_point()

        def sample_independent(self, study, trial, param_name, param_distribution):
            point = self._points.get(trial._trial_id)
            if point is None or param_name not in self._names:  # not a grid trial's parameter
                return optuna.samplers.RandomSampler().sample_independent(study, trial, param_name,
                                                                          param_distribution)
            return point[self._names.index(param_name)]

        def after_trial(self, study, trial, state, values):
            self._points.pop(trial._trial_id, None)

    return LazyGridSampler


def _distinct_point(spec, indices):
    """A grid point (value indices, one per setting) as the tuple of choices a trial takes, None
    for a setting that does not apply to it (one of another optimizer's); None for a point that
    repeats a set-up: one giving such a setting any value but its first."""
    point, chosen = [], {}
    dimensions = list(spec.space)
    for dimension, i in zip(dimensions, indices, strict=True):
        if dimension.name == "optimizer":
            chosen["optimizer"] = dimension.values[i]
    for dimension, i in zip(dimensions, indices, strict=True):
        if spec.applies(dimension.name, chosen):
            point.append(dimension.choices()[i])
        elif i:
            return None
        else:
            point.append(None)
    return tuple(point)


def LazyGridSampler(spec, covered=()):  # noqa: N802 (a class made when optuna is imported)
    return _lazy_grid_sampler_class()(spec, covered)


def covered_points(spec, trials):
    """The grid points a resumed sweep's trials took (asked again ones excepted) or wait for
    (fixed parameters): the lazy grid skips them."""
    from optuna.trial import TrialState

    names = [d.name for d in spec.space]
    covered = set()
    for frozen in trials:
        if frozen.state == TrialState.WAITING:
            fixed = frozen.system_attrs.get("fixed_params", {})
            covered.add(tuple(fixed.get(n) for n in names))
        elif not requeued(frozen):
            covered.add(tuple(frozen.params.get(n) for n in names))
    return covered


def study_to_run(sweep_id, spec):
    """The study a client asks from. A resumed sweep's: trials its ended client left running are
    asked again, a grid's sampler skips every point already tried or waiting (and asks the rest
    one at a time: nothing is queued in advance), and a random or TPE sampler's seed moves past
    the draws already made."""
    from optuna.trial import TrialState

    spec = as_journaled(sweep_id, spec)
    study = open_study(sweep_id, spec)
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return study
    names = [d.name for d in spec.space]
    for frozen in trials:
        if frozen.state == TrialState.RUNNING:  # its client ended while it ran: ask it again
            study._storage.set_trial_user_attr(frozen._trial_id, REQUEUED, True)
            study.tell(frozen.number, state=TrialState.FAIL)
            if spec.strategy != "grid" and frozen.params and set(frozen.params) == set(
                    name for name in names if spec.applies(name, frozen.params)):
                study.enqueue_trial(frozen.params, skip_if_exists=False)
    trials = study.get_trials(deepcopy=False)
    study.sampler = make_sampler(spec, offset=len(trials),
                                 covered=covered_points(spec, trials) if spec.strategy == "grid" else ())
    return study
