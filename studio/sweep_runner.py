"""The app's sweeps: one server-wide registry, keyed by sweep id, of sweeps run by this server.

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

from backprop.errors import InputError
from backprop.runs import RunStore
from backprop.sweep import Sweep, create_sweep, recorded_snapshot

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
