"""The app's sweeps: one server-wide registry, keyed by sweep id, of sweeps run by this server,
and everything the Sweep page asks of the engine (its set-ups, the run store, importances, loading
a trial into the Train page's Studio), so the page itself imports no engine function.

A sweep is admitted before anything of it is recorded (`_admit_and_start`): the space is valid,
its local workers within the operator's limit and the server's free training slots (each local
worker takes one while the sweep runs), all its processes within one session's memory budget
(backprop.sweep.admission), and at most BACKPROP_MAX_SWEEPS sweeps run at once; a resumed sweep's
journal is checked line by line first. A refused start leaves nothing behind.

A sweep belongs to the server, not to a browser tab: it runs in its own thread (its Dask client
loop), keeps running when the tab that started it closes, and any page that opens lists it again
(live while it runs here; from the run store and the study once it ended, or after a restart).

A sweep belongs to whoever started it (backprop.owners): the browser session's owner token, kept as
the sweep's owner and its trials' runs'. Anyone may watch it, read its trials and load them into
their Train page; only its owner, or the operator (a session that typed BACKPROP_ADMIN_TOKEN's token),
may pause, stop, cancel, resume, rename or delete it: every function that changes a sweep takes the
session's `actor` and the run store refuses the others (InputError("sweep") naming who may). An
actor of None is this process itself (the operator), as in the run store.

Dask spawns its worker processes, and a spawned process re-imports its parent's `__main__`:
under Streamlit that is the page script being run, which would run the page again in every
worker. So the app never starts a cluster in its own process: `backprop.sweep.connect` starts the
LocalCluster in a separate `python -m backprop.sweep serve N` process (or connects to a given
scheduler), and this module only holds the client side.
"""

import dataclasses
import os
import threading
import uuid
from pathlib import Path

from backprop import owners
from backprop.config import PRESETS, TrainConfig, preset
from backprop.data.toy2d import CLASSIFICATION
from backprop.errors import InputError
from backprop.runs import RunStore
from backprop.sweep import (
    Sweep,
    SweepSpec,
    check_journal,
    check_resume,
    check_sweep,
    create_sweep,
    delete_sweep,
    recorded_snapshot,
    study_path,
)
from backprop.sweep import default_workers as _default_workers
from backprop.sweep import importances as _importances
from backprop.sweep import max_workers as _max_workers
from backprop.sweep.listing import sweep_list as _sweep_list
from backprop.sweep.space import DIRECTIONS, METRICS  # noqa: F401 (the page's choices)
from backprop.threads import _free_slot, _take_slot, active_training_threads, max_training_threads

MAX_SWEEPS_VARIABLE = "BACKPROP_MAX_SWEEPS"
THREAD_PREFIX = "backprop-sweep-"
CANCEL_WAIT_SECONDS = 5  # cancel_sweep waits at most this long for the trials' runs and the final status

_lock = threading.Lock()
_sweeps = {}  # sweep id -> Sweep (run by this server)
_threads = {}  # sweep id -> its client thread


def max_sweeps():
    """Sweeps this server runs at once (BACKPROP_MAX_SWEEPS, default 1): each holds a Dask client,
    its trials' live rows and Optuna's study in the server's memory, and its workers' memory
    within one session's budget; one at a time keeps the server's share of it to one budget."""
    text = os.environ.get(MAX_SWEEPS_VARIABLE, "").strip()
    return int(text) if text.isdigit() and int(text) >= 1 else 1


def max_workers():
    """Local workers a visitor may choose: the operator's BACKPROP_SWEEP_MAX_WORKERS (default one
    per core), and never more than the server's training slots (BACKPROP_MAX_TRAINING_THREADS):
    every local worker trains, so each takes one of them while its sweep runs."""
    return max(1, min(_max_workers(), max_training_threads()))


def running_ids():
    """Sweeps this server runs now; a sweep whose final status is written no longer runs (its client
    thread may still be closing its cluster)."""
    with _lock:
        return [sweep_id for sweep_id, thread in _threads.items()
                if thread.is_alive() and not _sweeps[sweep_id].over]


def _check_room():
    """Under _lock: refuse a sweep past BACKPROP_MAX_SWEEPS (one that ended but still closes its
    cluster holds its place until its workers are gone)."""
    alive = [sid for sid, thread in _threads.items() if thread.is_alive()]
    if len(alive) >= max_sweeps():
        if all(_sweeps[sid].over for sid in alive):
            raise InputError("sweep", f"sweep {alive[0]} has ended and is closing its workers; try again "
                                      "in a few seconds")
        raise InputError("sweep", f"sweep {alive[0]} is running on this server; wait for it or cancel "
                                  f"it (at most {max_sweeps()} at once, {MAX_SWEEPS_VARIABLE})")


def _take_training_slots(count):
    """Under _lock: one of the server's training slots per local worker, all or none (InputError
    naming workers and the cap). Returns the slots' names."""
    cap, busy = max_training_threads(), active_training_threads()
    if count > cap - busy:
        free = max(0, cap - busy)
        need = (f"{count} local workers need {count} of the server's {cap} training slots "
                "(BACKPROP_MAX_TRAINING_THREADS)")
        if free:
            raise InputError("workers", f"{need}; {free} {'is' if free == 1 else 'are'} free now ({busy} "
                                        f"taken by training, loss landscapes or sweeps): choose at most "
                                        f"{free} workers, or wait")
        raise InputError("workers", f"{need}, and all {cap} are taken now by training, loss landscapes or "
                                    "sweeps: wait for one to end")
    names = []
    try:
        for _ in range(count):
            name = f"{THREAD_PREFIX}slot-{uuid.uuid4().hex[:8]}"
            _take_slot(name)
            names.append(name)
    except InputError:  # taken by a training that started meanwhile
        _free_training_slots(names)
        raise InputError("workers", f"{count} local workers need {count} of the server's {cap} training "
                                    "slots (BACKPROP_MAX_TRAINING_THREADS); some were taken meanwhile: "
                                    "choose fewer workers, or wait") from None
    return names


def _free_training_slots(names):
    for name in names:
        _free_slot(name)


def _admit_and_start(spec, store, scheduler, workers, journal_trials=0, sweep_id=None, owner=None):
    """Admit a sweep, then record (a new one) and start it; refused, nothing is recorded or held.
    Order: its memory and workers (backprop.sweep.check_sweep, allocating nothing), then under
    the lock the sweep cap and the training slots, then the record and the one-client claim."""
    cost = check_sweep(spec, workers, scheduler, journal_trials, worker_limit=_max_workers())
    with _lock:
        _check_room()
        slots = _take_training_slots(cost.workers or 0)
        sweep = None
        try:
            if sweep_id is None:
                sweep_id = create_sweep(spec, store, owner=owner)
            sweep = Sweep(sweep_id, store, scheduler=scheduler, workers=cost.workers).claim()
            thread = threading.Thread(target=_run, args=(sweep, slots), name=f"{THREAD_PREFIX}{sweep_id}",
                                      daemon=True)
            _sweeps[sweep_id], _threads[sweep_id] = sweep, thread
            thread.start()
        except BaseException:
            if sweep is not None:
                sweep.release()
            _free_training_slots(slots)
            raise
    return sweep_id


def _run(sweep, slots):
    try:
        sweep.run()
    except Exception:  # noqa: S110 (recorded as the sweep's status and message by Sweep.run)
        pass
    finally:
        _free_training_slots(slots)


def start_sweep(spec, scheduler=None, workers=None, store=None, owner=None):
    """Admit a checked SweepSpec, record it and run it in the background; returns its id. `owner`
    (the browser session's token; None: the operator's) owns the sweep and its trials' runs."""
    return _admit_and_start(spec, store or RunStore(), scheduler, workers, owner=owner)


def start_new(base, vary, strategy="grid", trials=None, seed=0, pruner="none", iterations=None,
              scheduler=None, workers=None, store=None, metric="test_cost", direction=None, target=None,
              owner=None):
    """Check a sweep (InputError naming the field, before anything is recorded), admit, record and
    run it. `metric`, `direction` and `target` as `backprop sweep --metric --direction --target`;
    `owner` as for start_sweep."""
    spec = SweepSpec.build(base, vary, strategy, trials if strategy != "grid" else None, seed, pruner,
                           iterations=iterations, metric=metric, direction=direction, target=target)
    return start_sweep(spec, scheduler=scheduler, workers=workers, store=store, owner=owner)


def resume_sweep(sweep_id, scheduler=None, workers=None, store=None, actor=None):
    """Continue a recorded sweep that is not running: finished trials stay, the others run. Its
    owner (or the operator) only; its journal is checked line by line and the sweep admitted like a
    new one before anything changes. It stays its owner's."""
    store = store or RunStore()
    store.check_sweep_change(sweep_id, actor)
    if sweep_id in running_ids():
        raise InputError("sweep", f"sweep {sweep_id} is already running")
    _refuse_closing(sweep_id, "resume")
    resume = check_resume(sweep_id, store)
    return _admit_and_start(resume.spec, store, scheduler, workers, resume.journal_trials, resume.sweep_id)


def _refuse_closing(sweep_id, what):
    """InputError("sweep") while a sweep that ended here still closes its cluster (a second or more)."""
    with _lock:
        thread = _threads.get(sweep_id)
    if thread is not None and thread.is_alive():
        raise InputError("sweep", f"sweep {sweep_id} has ended and is closing its workers; {what} it in a "
                                  "few seconds")


def _changed_by(sweep_id, actor):
    """The sweep this server runs, once `actor` may change it (InputError("sweep") naming who may);
    None when this server does not run it."""
    RunStore().check_sweep_change(sweep_id, actor)
    with _lock:
        return _sweeps.get(sweep_id)


def cancel_sweep(sweep_id, actor=None, wait=CANCEL_WAIT_SECONDS):
    """Stop every running trial of a sweep run here and ask no more. The sweep is 'cancelled' in the
    run store at once and its trials told to stop at their next step; this waits (at most `wait`
    seconds) until their runs are marked and the final status written, not for the cluster to
    close. True once it has ended. `actor` must own the sweep, or be the operator."""
    sweep = _changed_by(sweep_id, actor)
    if sweep is None:
        return True
    sweep.cancel()
    return sweep.wait_over(wait)


def pause_sweep(sweep_id, actor=None):
    """No new trials for a sweep run here (running ones finish) until resume_asking."""
    sweep = _changed_by(sweep_id, actor)
    if sweep is not None:
        sweep.pause()


def resume_asking(sweep_id, actor=None):
    """A paused sweep asks trials again."""
    sweep = _changed_by(sweep_id, actor)
    if sweep is not None:
        sweep.resume()


def stop_sweep(sweep_id, actor=None):
    """No new trials; the running ones finish, then the sweep ends (it can be resumed later)."""
    sweep = _changed_by(sweep_id, actor)
    if sweep is not None:
        sweep.stop()


def rename_sweep(sweep_id, name, actor=None):
    """A sweep's new name (InputError "name" for an empty or too long one, "sweep" for another's)."""
    RunStore().rename_sweep(sweep_id, name, actor=actor)


def remove_sweep(sweep_id, actor=None):
    """Forget a sweep that is not running: its record, its trials' runs and checkpoints, its journal.
    InputError("sweep") for another's sweep or one that runs (cancel it first)."""
    store = RunStore()
    store.check_sweep_change(sweep_id, actor)
    if sweep_id in running_ids():
        raise InputError("sweep", f"sweep #{sweep_id} is running; cancel it first")
    _refuse_closing(sweep_id, "delete")
    delete_sweep(sweep_id, store, actor=actor)
    with _lock:
        thread = _threads.get(sweep_id)
        if thread is None or not thread.is_alive():
            _threads.pop(sweep_id, None)
            _sweeps.pop(sweep_id, None)


def _running_sweep(sweep_id):
    with _lock:
        return _sweeps.get(sweep_id)


@dataclasses.dataclass(frozen=True)
class SweepRights:
    """What one actor (a browser session) may do with one sweep, and why not, for the Sweep page."""

    may_change: bool  # pause, stop, cancel, resume, rename, delete
    started_by: str  # "you", "another browser" or "the operator" (backprop.owners.whose)
    operator: bool  # the actor typed the operator token: it may change every sweep

    @property
    def why_not(self):
        """The caption beside disabled controls ('' when the actor may change the sweep)."""
        if self.may_change:
            return ""
        return (f"Started by {self.started_by}: you may watch it, read its trials and load them into your "
                "Train page; only the browser that started it, or the operator (with the token of "
                f"{owners.ADMIN_TOKEN_VARIABLE}), may pause, stop, cancel, resume, rename or delete it.")


def rights(record, actor):
    """SweepRights of `actor` over a sweep's record (a dict from list_sweeps or sweep_record)."""
    owner = record.get("owner")
    return SweepRights(owners.may_change(owner, actor), owners.whose(owner, actor), actor == owners.OPERATOR)


def is_paused(sweep_id):
    sweep = _running_sweep(sweep_id)
    return sweep is not None and sweep.paused


def wait(sweep_id, timeout):
    """Wait for a sweep run here to end; True once it has."""
    with _lock:
        thread = _threads.get(sweep_id)
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True


def snapshot(sweep_id, store=None):
    """The sweep's live state if this server runs it (or ran it), else as recorded: its journal
    checked line by line first (InputError "journal" naming the file, the line and what is wrong);
    a sweep without a study reads as no trials yet."""
    with _lock:
        sweep = _sweeps.get(sweep_id)
    if sweep is not None:
        return sweep.snapshot()
    store = store or RunStore()
    _check_recorded_journal(sweep_id, store)
    return recorded_snapshot(sweep_id, store)


_journals_checked = {}  # sweep id -> (inode, size, mtime) of its journal when last found intact


def _check_recorded_journal(sweep_id, store):
    """Check a recorded sweep's journal line by line (recorded_snapshot reads a damaged one as no
    trials; the page must say what is wrong), once per version of the file."""
    path = study_path(sweep_id, create_folder=False)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return
    version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if _journals_checked.get(sweep_id) == version:
        return
    spec = SweepSpec.from_dict(store.get_sweep(sweep_id)["spec"])
    check_journal(path, sweep_id, spec)
    if len(_journals_checked) > 64:
        _journals_checked.clear()
    _journals_checked[sweep_id] = version


def is_running(sweep_id):
    return sweep_id in running_ids()


# -- what the Sweep page asks ------------------------------------------------------------------------
TRAIN_BASE = "The Train page's set-up"
PLAYGROUND = "2D playground: "
BASE_CHOICES = (TRAIN_BASE, *PRESETS, *(PLAYGROUND + name for name in CLASSIFICATION))


def playground_base(dataset):
    """A small network for a 2D task: quick to train, easy to compare."""
    return TrainConfig(dataset=dataset, digits=(0, 1), layers=[8, 8, 1], activation="tanh", init="xavier",
                       optimizer="adam", learning_rate=0.03, iterations=300, eval_every=30).validated()


def base_config(choice, studio):
    """The set-up a sweep starts from: the Train page's (its pending one first), a preset, or a
    small network for a 2D playground task."""
    if choice == TRAIN_BASE:
        return (studio.pending or studio.config).validated()
    if choice.startswith(PLAYGROUND):
        return playground_base(choice[len(PLAYGROUND):])
    return preset(choice)


def default_workers():
    """Local worker processes when none is chosen: one per core, within max_workers()."""
    return min(_default_workers(), max_workers())


def run_store():
    """The run store (InputError with a message when it cannot be opened)."""
    return RunStore()


def list_sweeps():
    """Every recorded sweep, newest first (dicts: id, name, status, spec, message)."""
    return run_store().list_sweeps()


def sweep_list(search=None):
    """The recorded sweeps matching `search` (a part of the name, or the id), newest first, as
    `backprop sweeps` lists them (backprop.sweep.listing.SweepSummary; InputError("search") for a
    search past its length)."""
    return _sweep_list(run_store(), search)


def sweep_rows(summaries):
    """The list's rows: the same columns as `backprop sweeps` (id, name, status, trials, best,
    created, compute; a note where a sweep's numbers could not be read)."""
    return [summary.row() for summary in summaries]


def sweep_record(sweep_id):
    return run_store().get_sweep(sweep_id)


def importances(sweep_id):
    """Optuna's parameter importances ({} until it can tell, and for a sweep with no study yet or
    a damaged journal, which the page reports from snapshot())."""
    try:
        return _importances(sweep_id)
    except InputError:
        return {}


def load_trial(studio, sweep_id, number):
    """A trial on the Train page: its set-up (the sweep's base, the user's eval_every included,
    with the trial's values) and, when it finished, its trained network from its run's checkpoint."""
    snap = snapshot(sweep_id)
    trial = next((t for t in snap.trials if t.number == number), None)
    if trial is None:
        raise InputError("trial", f"sweep {sweep_id} has no trial {number}")
    spec = SweepSpec.from_dict(sweep_record(sweep_id)["spec"])
    config = spec.config_of(trial.params)
    checkpoint = trial.checkpoint
    if checkpoint is None and trial.run_id is not None and trial.status == "finished":
        try:
            checkpoint = run_store().get(trial.run_id)["checkpoint_path"]
        except InputError:  # its run was deleted on the Compare page
            checkpoint = None
    if trial.status == "finished" and checkpoint and Path(checkpoint).exists():
        studio.load_run(config, checkpoint, label=f"Trial {number}")
    else:
        studio.propose(config)
        studio.message = ("info", f"Trial {number}'s set-up is on the Train page; press Reset, then Train.")
    return trial
