"""What the CLI and the app show of a sweep: a `SweepSnapshot` of `TrialView`s, live (from the
client that runs it, `Sweep.snapshot()`) or as recorded (`recorded_snapshot`: the study's journal
and the run store, for a sweep no client in this process runs), and which settings mattered
(`setting_importance`: an `Importance`, computed from a snapshot, live or recorded).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

from ..errors import InputError
from ..run import Evaluation, StepRow
from .space import SweepSpec
from .study import open_study, requeued, result_of

ENDED = ("finished", "pruned", "failed", "diverged")  # trials that count as done


@dataclass
class TrialView:
    """One trial as the CLI and the app show it."""

    number: int
    params: dict  # setting name -> Python value
    status: str = "queued"  # queued, running, finished, pruned, failed, diverged, cancelled
    run_id: int | None = None  # the run of its last attempt
    test_cost: float | None = None
    test_accuracy: float | None = None
    train_accuracy: float | None = None
    seconds: float | None = None
    worker: str | None = None
    reason: str | None = None
    curve: list = field(default_factory=list)  # StepRow (thinned)
    evaluations: list = field(default_factory=list)  # Evaluation
    ended_at: float | None = None  # seconds since the sweep (re)started
    checkpoint: str | None = None  # the trained network of a finished trial
    lost: list = field(default_factory=list)  # LostAttempt: attempts whose worker died
    intermediate: dict = field(default_factory=dict)  # step -> the metric the pruner was told (journal)
    train_cost: float | None = None
    metric_value: float | None = None  # the sweep's metric, as Optuna was told (finished trials)

    @property
    def value(self):
        """The sweep's metric (a trial recorded, or made, without one: its test cost)."""
        return self.metric_value if self.metric_value is not None else self.test_cost


@dataclass
class SweepSnapshot:
    sweep_id: int
    status: str  # starting, running, finished, cancelled, failed
    total: int
    trials: list  # TrialView copies, by number
    elapsed: float
    best_so_far: list  # (seconds, best test cost, its test accuracy)
    message: str | None = None
    space: tuple = ()
    metric: str = "test_cost"
    direction: str = "minimize"

    @property
    def metric_label(self):
        return self.metric.replace("_", " ")

    def count(self, status):
        return sum(1 for trial in self.trials if trial.status == status)

    @property
    def done(self):
        return sum(1 for trial in self.trials if trial.status in ENDED)

    def best(self, n=None):
        sign = 1 if self.direction == "minimize" else -1
        ranked = sorted((t for t in self.trials if t.status == "finished" and t.value is not None),
                        key=lambda t: sign * t.value)
        return ranked if n is None else ranked[:n]

    def lost_attempts(self):
        """[(trial number, LostAttempt)]: every attempt whose worker died, by trial."""
        return [(trial.number, attempt) for trial in self.trials for attempt in trial.lost]


def view_of(spec, frozen):
    """A recorded Optuna trial as a TrialView (None for one that is asked again)."""
    from optuna.trial import TrialState

    if requeued(frozen):
        return None
    params = {d.name: d.value(frozen.params[d.name]) for d in spec.space if d.name in frozen.params}
    result = result_of(frozen)
    status = {TrialState.COMPLETE: "finished", TrialState.PRUNED: "pruned",
              TrialState.FAIL: result.status if result else "failed", TrialState.WAITING: "queued",
              TrialState.RUNNING: "queued"}[frozen.state]
    intermediate = {int(step): float(value) for step, value in sorted(frozen.intermediate_values.items())
                    if value is not None and math.isfinite(value)}
    if result is None:
        return TrialView(frozen.number, params, status, intermediate=intermediate)
    value = result.value
    if value is None and frozen.state == TrialState.COMPLETE:  # recorded before results kept it
        value = frozen.value
    return TrialView(frozen.number, params, status, result.run_id, result.test_cost, result.test_accuracy,
                     result.train_accuracy, result.seconds, reason=result.reason,
                     checkpoint=result.checkpoint, lost=list(result.lost), intermediate=intermediate,
                     train_cost=result.train_cost, metric_value=value)


def attach_runs(views, store, sweep_id):
    """Give trials whose journal record names no run (a sweep recorded before the journal kept
    them, a trial its client left running) the last run of their trial number in the run store,
    and a finished one its checkpoint."""
    missing = [view for view in views if view.run_id is None]
    if not missing:
        return
    runs = {run["trial"]: run for run in store.sweep_runs(sweep_id)}  # the last run of each trial
    for view in missing:
        run = runs.get(view.number)
        if run is not None:
            view.run_id = run["id"]
            if view.status == "finished":
                view.checkpoint = run["checkpoint_path"]


def _curves(view, store):
    try:
        rows = store.history(view.run_id)
    except InputError:  # the run was deleted on the Compare page
        return
    view.curve = [StepRow(row["iteration"], row["epoch"], row["cost"]) for row in rows
                  if row["cost"] is not None]
    view.evaluations = [Evaluation(row["iteration"], row["test_cost"], row["test_accuracy"])
                        for row in rows if row["test_cost"] is not None]


def recorded_snapshot(sweep_id, store=None, curves=True):
    """A sweep as recorded (study and run store), for one that no client in this process runs;
    reads only. Trials left running by a client that ended show as queued (resume runs them)."""
    from optuna.trial import TrialState

    from ..runs import RunStore

    store = store or RunStore()
    record = store.get_sweep(sweep_id)
    spec = SweepSpec.from_dict(record["spec"])
    try:
        trials = open_study(sweep_id).get_trials(deepcopy=False)
    except Exception:  # no study yet (refused before it started)
        trials = []
    views, first = [], None
    for frozen in trials:
        view = view_of(spec, frozen)
        if view is None or frozen.state == TrialState.WAITING:
            continue
        if frozen.datetime_start is not None:
            first = frozen.datetime_start if first is None else min(first, frozen.datetime_start)
        views.append((frozen, view))
    best = []
    for frozen, view in sorted(views, key=lambda pair: pair[0].datetime_complete or pair[0].datetime_start):
        if frozen.datetime_complete is not None and first is not None:
            view.ended_at = (frozen.datetime_complete - first).total_seconds()
        better = view.value is not None and spec.better(view.value, best[-1][1] if best else None)
        if view.status == "finished" and better:
            best.append((view.ended_at or 0.0, view.value, view.test_accuracy))
    attach_runs([view for _, view in views], store, sweep_id)
    if curves:
        for _, view in views:
            if view.run_id is not None:
                _curves(view, store)
    elapsed = max((v.ended_at or 0.0 for _, v in views), default=0.0)
    return SweepSnapshot(int(sweep_id), record["status"], spec.total(),
                         [view for _, view in sorted(views, key=lambda pair: pair[1].number)], elapsed, best,
                         record["message"], spec.space, spec.metric, spec.direction)


# -- which settings mattered -------------------------------------------------------------------------
MIN_FINISHED = 3  # finished trials before importances (and the app's plots) are shown
OBJECTIVE = "test cost"  # the default metric: what importances and correlations are of unless chosen


@dataclass(frozen=True)
class SettingImportance:
    """One varied setting: how much it mattered, and which way the test cost goes with it."""

    name: str
    importance: float  # the evaluator's share: the settings' shares add up to 1 (all 0: it cannot tell)
    correlation: float | None = None  # Spearman's rho of the setting with the test cost (None: constant)

    @property
    def direction(self):
        """'↑': the test cost rises as the setting rises (later in the sweep's list, for a setting
        without an order), '↓': it falls, '': neither (or not known)."""
        if self.correlation is None or self.correlation == 0:
            return ""
        return "↑" if self.correlation > 0 else "↓"

    def correlation_text(self):
        """'↑ +0.82', '↓ -0.41', or '' without a correlation."""
        return "" if self.correlation is None else f"{self.direction} {self.correlation:+.2f}".strip()

    def to_dict(self):
        return {"name": self.name, "importance": self.importance, "spearman": self.correlation,
                "direction": self.direction}


@dataclass(frozen=True)
class Importance:
    """Which settings mattered to a sweep's test cost, from its finished trials: each setting's share
    by `evaluator` (the one actually used: `fallbacks` say why any before it could not), with
    Spearman's rank correlation between the setting (its value, or its place in the sweep's list
    for a setting without an order: activation, layers) and the test cost."""

    evaluator: str  # "PED-ANOVA", "fANOVA" or "|Spearman rho|": the one that gave `settings`' shares
    trials: int  # finished trials it read
    settings: tuple = ()  # SettingImportance, most important first
    objective: str = OBJECTIVE
    optuna_version: str = ""
    fallbacks: tuple = ()  # (evaluator, why it could not) for each tried before `evaluator`

    def shares(self):
        """{setting: share}, most important first (what optuna.importance returns)."""
        return {item.name: item.importance for item in self.settings}

    def to_dict(self):
        """A JSON-ready document (e.g. for `backprop sweep --json`)."""
        return {"evaluator": self.evaluator, "optuna": self.optuna_version, "objective": self.objective,
                "trials": self.trials, "settings": [item.to_dict() for item in self.settings],
                "fallbacks": [{"evaluator": name, "why": why} for name, why in self.fallbacks]}

    def text(self):
        """Lines for a terminal: the evaluator, then one setting a line with its share and direction."""
        lines = [f"Setting importance ({self.evaluator}, {self.trials} finished trials; arrow: the "
                 f"{self.objective} rises (↑) or falls (↓) as the setting rises, Spearman's rho):"]
        width = max((len(item.name) for item in self.settings), default=0)
        lines += [f"  {item.name:<{width}}  {item.importance:5.1%}  {item.correlation_text()}".rstrip()
                  for item in self.settings]
        return "\n".join(lines)


def _ped_anova():
    from optuna.importance import PedAnovaImportanceEvaluator  # Optuna 3.6 on; the default from 5.0

    return PedAnovaImportanceEvaluator()


def _fanova():
    from optuna.importance import FanovaImportanceEvaluator  # needs scikit-learn (ImportError without)

    return FanovaImportanceEvaluator(seed=0)


# Tried in order; the first that works names the result. PED-ANOVA needs nothing beyond Optuna and
# NumPy (fANOVA needs scikit-learn, which this project does not install): the evaluator is chosen
# here, not left to get_param_importances' default (fANOVA before Optuna 5, PED-ANOVA after).
EVALUATORS = (("PED-ANOVA", _ped_anova), ("fANOVA", _fanova))
FALLBACK = "|Spearman rho|"  # the settings' absolute rank correlations, as shares, when none works


def _ranks(values):
    """Ranks from 0 (ties share their average rank)."""
    import numpy as np

    _, inverse, counts = np.unique(np.asarray(values, dtype=float), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2.0)[inverse.reshape(-1)]


def spearman(xs, ys):
    """Spearman's rank correlation (None when either side is constant or fewer than 2 pairs)."""
    import numpy as np

    if len(xs) < 2:
        return None
    a, b = _ranks(xs), _ranks(ys)
    a, b = a - a.mean(), b - b.mean()
    scale = math.sqrt(float(a @ a) * float(b @ b))
    return None if scale == 0 else float(np.clip(float(a @ b) / scale, -1.0, 1.0))


def order_value(dimension, value):
    """A setting's value as a number to rank by: itself for a number, its place in the sweep's list
    for anything else (layer sizes, names); None when it is neither."""
    numeric = dimension.setting.kind in ("int", "float")
    if numeric and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if dimension.values is not None and value in dimension.values:
        return float(dimension.values.index(value))
    return None


def _optuna_param(dimension, value):
    """A TrialView's value as Optuna keeps it (Dimension.optuna_value)."""
    return dimension.optuna_value(value)


def _study_of(space, trials, direction="minimize"):
    """An in-memory Optuna study holding these finished trials (their varied settings only)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    frozen = []
    for trial in trials:
        params = {d.name: _optuna_param(d, trial.params.get(d.name)) for d in space}
        frozen.append(optuna.trial.create_trial(
            params=params, distributions={d.name: d.distribution() for d in space}, value=trial.value))
    study.add_trials(frozen)
    return study


def setting_importance(snapshot, evaluators=EVALUATORS):
    """Which of a sweep's settings mattered to its test cost, from the snapshot's finished trials
    (live or recorded): an `Importance`, or None before MIN_FINISHED trials finished with a test
    cost or while no setting has taken two values among them.

    The shares come from the first of `evaluators` ((name, factory) pairs: PED-ANOVA, then fANOVA)
    that works on the installed Optuna; one that raises ImportError (fANOVA without scikit-learn),
    NotImplementedError, ValueError or RuntimeError is noted in `fallbacks` and the next is tried;
    when none works the shares are the settings' |Spearman rho| (FALLBACK)."""
    import optuna

    finished = [t for t in snapshot.trials if t.status == "finished" and t.value is not None
                and math.isfinite(t.value)]
    space = [d for d in snapshot.space
             if all(_optuna_param(d, t.params.get(d.name)) is not None for t in finished)
             and len({repr(t.params.get(d.name)) for t in finished}) > 1]
    if len(finished) < MIN_FINISHED or not space:
        return None
    costs = [t.value for t in finished]
    correlations = {d.name: spearman([order_value(d, t.params[d.name]) for t in finished], costs)
                    for d in space}
    names = [d.name for d in space]
    shares, used, fallbacks = None, FALLBACK, []
    for name, factory in evaluators:
        try:
            with warnings.catch_warnings():  # experimental (Optuna 4), too few trials for the evaluator
                warnings.simplefilter("ignore")
                evaluator = factory()
                study = _study_of(space, finished, snapshot.direction)
                shares = optuna.importance.get_param_importances(study, evaluator=evaluator, params=names)
            used = name
            break
        except (ImportError, NotImplementedError, ValueError, RuntimeError) as error:
            fallbacks.append((name, f"{type(error).__name__}: {error}"))
    if shares is None:
        sizes = {name: abs(correlations[name] or 0.0) for name in names}
        total = sum(sizes.values())
        shares = {name: size / total if total else 0.0 for name, size in sizes.items()}
    ranked = sorted(names, key=lambda name: (-float(shares.get(name, 0.0)), names.index(name)))
    return Importance(used, len(finished),
                      tuple(SettingImportance(name, float(shares.get(name, 0.0)), correlations[name])
                            for name in ranked),
                      objective=snapshot.metric_label, optuna_version=optuna.__version__,
                      fallbacks=tuple(fallbacks))


def importances(sweep_id):
    """{setting: share} of a recorded sweep's test cost ({} until setting_importance can tell)."""
    result = setting_importance(recorded_snapshot(sweep_id, curves=False))
    return {} if result is None else result.shares()
