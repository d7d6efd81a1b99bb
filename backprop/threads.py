"""Training threads: a server-wide cap on how many train at once, and the loop each one runs.

A `TrainingThread` loops `trainer.step(1)` in the background and never calls `st.*`; Streamlit
kills a script mid-loop when a person clicks, so training never runs in the script itself.
"""

import os
import sys
import threading
import time
from collections import deque

from backprop.errors import InputError

THREAD_PREFIX = "backprop-train-"


def max_training_threads():
    """Server-wide cap on concurrent training threads (env BACKPROP_MAX_TRAINING_THREADS, default 4)."""
    try:
        return max(1, int(os.environ.get("BACKPROP_MAX_TRAINING_THREADS", "4")))
    except ValueError:
        return 4


_slots_lock = threading.Lock()
_active_threads = set()  # names of training threads that hold a slot


def active_training_threads():
    """How many training threads run in this server process right now (all sessions)."""
    with _slots_lock:
        return len(_active_threads)


def _log_thread_count():
    """One line in the server's log per start/stop, so a test (or an operator) can count threads."""
    print(f"backprop-studio: training threads running: {len(_active_threads)}", file=sys.stderr,
          flush=True)


def _take_slot(name):
    with _slots_lock:
        limit = max_training_threads()
        if len(_active_threads) >= limit:
            raise InputError("training", f"the server is already training {limit} networks at once "
                                         "(its limit, BACKPROP_MAX_TRAINING_THREADS); wait for one "
                                         "to finish or pause it, then press Train again")
        _active_threads.add(name)
        _log_thread_count()


def _free_slot(name):
    with _slots_lock:
        _active_threads.discard(name)
        _log_thread_count()


class TrainingThread:
    """Start/pause control for one background loop of `trainer.step(1)`.

    A thread lives only while training runs: Pause (or the budget, or a divergence) ends it, so a
    paused session costs no thread. `on_records(records)` is called after every step, in the
    thread, and `on_stop(reason)` once when the loop ends.
    """

    def __init__(self, name, on_records, on_stop):
        self.name = name
        self.on_records = on_records
        self.on_stop = on_stop
        self._run = threading.Event()
        self._stopped = threading.Event()  # wakes a paced loop at once on Pause
        self.steps_per_second = None  # None: full speed; else a slow-motion pace for a demo
        self._thread = None
        self._rates = deque(maxlen=64)  # (time, iteration) samples for iterations/s
        self.started_at = None

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def start(self, trainer, budget):
        if self.running:
            return
        _take_slot(self.name)
        self._stopped.clear()
        self._run.set()
        self._rates.clear()
        self.started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, args=(trainer, budget), name=self.name,
                                        daemon=True)
        self._thread.start()

    def stop(self, wait=True):
        """Ask the loop to end after its current step; with wait, until it has."""
        self._run.clear()
        self._stopped.set()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def iterations_per_second(self):
        """Recent wall-clock rate (what a person sees), over the last few seconds."""
        samples = list(self._rates)
        if len(samples) < 2:
            return 0.0
        (t0, i0), (t1, i1) = samples[0], samples[-1]
        return (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0

    def _loop(self, trainer, budget):
        reason = "paused"
        try:
            self._rates.append((time.perf_counter(), trainer.iteration))
            next_step = time.perf_counter()
            while self._run.is_set():
                if trainer.iteration >= budget:
                    reason = "budget"
                    break
                pace = self.steps_per_second
                if pace:
                    next_step = max(next_step + 1.0 / pace, time.perf_counter() - 1.0)
                    if self._stopped.wait(max(0.0, next_step - time.perf_counter())):
                        break
                records = trainer.step(1)
                now = time.perf_counter()
                if not self._rates or now - self._rates[-1][0] > 0.1:
                    self._rates.append((now, trainer.iteration))
                self.on_records(records)
                if trainer.diverged is not None:
                    reason = "diverged"
                    break
        except Exception as error:  # never die silently: the page shows what happened
            reason = f"error: {error}"
        finally:
            self._run.clear()
            _free_slot(self.name)
            self.on_stop(reason)
