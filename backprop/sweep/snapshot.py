"""What the CLI and the app show of a sweep: a `SweepSnapshot` of `TrialView`s, live (from the
client that runs it, `Sweep.snapshot()`) or as recorded (`recorded_snapshot`: the study's journal
and the run store, for a sweep no client in this process runs), and Optuna's importances.
"""

from __future__ import annotations

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

    def count(self, status):
        return sum(1 for trial in self.trials if trial.status == status)

    @property
    def done(self):
        return sum(1 for trial in self.trials if trial.status in ENDED)

    def best(self, n=None):
        ranked = sorted((t for t in self.trials if t.status == "finished" and t.test_cost is not None),
                        key=lambda t: t.test_cost)
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
    if result is None:
        return TrialView(frozen.number, params, status)
    return TrialView(frozen.number, params, status, result.run_id, result.test_cost, result.test_accuracy,
                     result.train_accuracy, result.seconds, reason=result.reason,
                     checkpoint=result.checkpoint, lost=list(result.lost))


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
        better = view.test_cost is not None and (not best or view.test_cost < best[-1][1])
        if view.status == "finished" and better:
            best.append((view.ended_at or 0.0, view.test_cost, view.test_accuracy))
    attach_runs([view for _, view in views], store, sweep_id)
    if curves:
        for _, view in views:
            if view.run_id is not None:
                _curves(view, store)
    elapsed = max((v.ended_at or 0.0 for _, v in views), default=0.0)
    return SweepSnapshot(int(sweep_id), record["status"], spec.total(),
                         [view for _, view in sorted(views, key=lambda pair: pair[1].number)], elapsed, best,
                         record["message"], spec.space)


def importances(sweep_id):
    """Optuna's parameter importances for a sweep ({} until two trials finished with different
    values)."""
    import optuna
    from optuna.trial import TrialState

    study = open_study(sweep_id)
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = {name for t in finished for name in t.params
              if len({repr(u.params.get(name)) for u in finished}) > 1}
    if len(finished) < 2 or not varied:
        return {}
    try:
        return optuna.importance.get_param_importances(study, params=sorted(varied))
    except (ValueError, RuntimeError):
        return {}
