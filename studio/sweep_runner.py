"""The app's sweeps: one server-wide registry, keyed by sweep id, of sweeps run by this server,
and everything the Sweep page asks of the engine (its set-ups, the run store, importances, loading
a trial into the Train page's Studio), so the page itself imports no engine function.

A sweep belongs to the server, not to a browser tab: it runs in its own thread (its Dask client
loop), keeps running when the tab that started it closes, and any page that opens lists it again
(live while it runs here; from the run store and the study once it ended, or after a restart).

Dask spawns its worker processes, and a spawned process re-imports its parent's `__main__`:
under Streamlit that is the page script being run, which would run the page again in every
worker. So the app never starts a cluster in its own process: `backprop.sweep.connect` starts the
LocalCluster in a separate `python -m backprop.sweep serve N` process (or connects to a given
scheduler), and this module only holds the client side.
"""

import os
import threading
from pathlib import Path

from backprop.config import PRESETS, TrainConfig, preset
from backprop.data.toy2d import CLASSIFICATION
from backprop.errors import InputError
from backprop.runs import RunStore
from backprop.sweep import Sweep, SweepSpec, create_sweep, recorded_snapshot
from backprop.sweep import default_workers as _default_workers
from backprop.sweep import importances as _importances

MAX_SWEEPS_VARIABLE = "BACKPROP_MAX_SWEEPS"
THREAD_PREFIX = "backprop-sweep-"

_lock = threading.Lock()
_sweeps = {}  # sweep id -> Sweep (run by this server)
_threads = {}  # sweep id -> its client thread


def max_sweeps():
    """Sweeps this server runs at once: each one's workers take every core (default 1)."""
    text = os.environ.get(MAX_SWEEPS_VARIABLE, "").strip()
    return int(text) if text.isdigit() and int(text) >= 1 else 1


def running_ids():
    with _lock:
        return [sweep_id for sweep_id, thread in _threads.items() if thread.is_alive()]


def _start(sweep):
    with _lock:
        alive = [sid for sid, thread in _threads.items() if thread.is_alive()]
        if len(alive) >= max_sweeps():
            raise InputError("sweep", f"sweep {alive[0]} is running on this server; wait for it or cancel "
                                      f"it (at most {max_sweeps()} at once, {MAX_SWEEPS_VARIABLE})")
        thread = threading.Thread(target=_run, args=(sweep,), name=f"{THREAD_PREFIX}{sweep.sweep_id}",
                                  daemon=True)
        _sweeps[sweep.sweep_id], _threads[sweep.sweep_id] = sweep, thread
        thread.start()
    return sweep.sweep_id


def _run(sweep):
    try:
        sweep.run()
    except Exception:  # recorded as the sweep's status and message by Sweep.run
        pass


def start_sweep(spec, scheduler=None, workers=None, store=None):
    """Record a checked SweepSpec and run it in the background; returns its id."""
    store = store or RunStore()
    sweep_id = create_sweep(spec, store)
    return _start(Sweep(sweep_id, store, scheduler=scheduler, workers=workers))


def start_new(base, vary, strategy="grid", trials=None, seed=0, pruner="none", iterations=None,
              scheduler=None, workers=None, store=None):
    """Check a sweep (InputError naming the field, before anything starts), record and run it."""
    spec = SweepSpec.build(base, vary, strategy, trials if strategy != "grid" else None, seed, pruner,
                           iterations=iterations)
    return start_sweep(spec, scheduler=scheduler, workers=workers, store=store)


def resume_sweep(sweep_id, scheduler=None, workers=None, store=None):
    """Continue a recorded sweep that is not running: finished trials stay, the others run."""
    if sweep_id in running_ids():
        raise InputError("sweep", f"sweep {sweep_id} is already running")
    return _start(Sweep(sweep_id, store or RunStore(), scheduler=scheduler, workers=workers))


def cancel_sweep(sweep_id):
    """Stop every running trial of a sweep run here (each within about 2 s) and free the workers."""
    with _lock:
        sweep = _sweeps.get(sweep_id)
    if sweep is not None:
        sweep.cancel()


def wait(sweep_id, timeout):
    """Wait for a sweep run here to end; True once it has."""
    with _lock:
        thread = _threads.get(sweep_id)
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True


def snapshot(sweep_id, store=None):
    """The sweep's live state if this server runs it (or ran it), else as recorded."""
    with _lock:
        sweep = _sweeps.get(sweep_id)
    if sweep is not None:
        return sweep.snapshot()
    return recorded_snapshot(sweep_id, store)


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
    """Local worker processes when none is chosen: one per core."""
    return _default_workers()


def run_store():
    """The run store (InputError with a message when it cannot be opened)."""
    return RunStore()


def list_sweeps():
    """Every recorded sweep, newest first (dicts: id, name, status, spec, message)."""
    return run_store().list_sweeps()


def sweep_record(sweep_id):
    return run_store().get_sweep(sweep_id)


def importances(sweep_id):
    """Optuna's parameter importances ({} until it can tell)."""
    return _importances(sweep_id)


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
