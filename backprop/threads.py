"""Training in the background: a server-wide cap on how many big runs train at once, the loop each
one runs, and small runs handed to the shared pool (backprop.scheduler).

A `TrainingThread` trains one run in the background and never calls `st.*`; Streamlit kills a
script mid-loop when a person clicks, so training never runs in the script itself. A big run
(`backprop.scheduler.is_small` says no) loops `trainer.step(1)` in a thread of its own, at most
BACKPROP_MAX_TRAINING_THREADS of them at once (`active_training_threads`); a small one (a
Playground network) is stepped in turns by the pool's few workers, at most
BACKPROP_MAX_SMALL_RUNS at once (`active_small_runs`). Both kinds pause, step, stop at their
budget or a divergence and keep a slow-motion pace alike, and every start and end prints
"backprop-studio: training threads running: N", N counting the runs of both kinds; an end also
prints "backprop-studio: <thread name> ended: <reason>" (paused, budget, diverged, error: ...).
"""

import os
import sys
import threading
import time
from collections import deque

from backprop import scheduler
from backprop.errors import InputError

THREAD_PREFIX = "backprop-train-"


def max_training_threads():
    """Server-wide cap on concurrent training threads (env BACKPROP_MAX_TRAINING_THREADS, default 4)."""
    try:
        return max(1, int(os.environ.get("BACKPROP_MAX_TRAINING_THREADS", "4")))
    except ValueError:
        return 4


_slots_lock = threading.Lock()
_active_threads = set()  # names of training threads (and landscape jobs) that hold a capped slot
_small_runs = set()  # the TrainingThreads of small runs in the pool


def active_training_threads():
    """How many capped slots are taken in this server process right now (all sessions): big runs'
    own threads and loss-landscape jobs, what BACKPROP_MAX_TRAINING_THREADS limits."""
    with _slots_lock:
        return len(_active_threads)


def active_small_runs():
    """How many small runs train in the shared pool right now (all sessions)."""
    with _slots_lock:
        return len(_small_runs)


def _log_thread_count():
    """One line in the server's log per start/stop, so a test (or an operator) can count what
    trains: big runs' threads, landscape jobs and small runs in the pool."""
    print(f"backprop-studio: training threads running: {len(_active_threads) + len(_small_runs)}",
          file=sys.stderr, flush=True)


def _take_slot(name):
    with _slots_lock:
        limit = max_training_threads()
        if len(_active_threads) >= limit:
            raise InputError("training", f"the server is already training {limit} networks at once "
                                         "(its limit, BACKPROP_MAX_TRAINING_THREADS); wait for one "
                                         "to finish or pause it, then press Train again")
        _active_threads.add(name)
        _log_thread_count()


def _log_end(name, reason):
    print(f"backprop-studio: {name} ended: {reason}", file=sys.stderr, flush=True)


def _free_slot(name):
    with _slots_lock:
        _active_threads.discard(name)
        _log_thread_count()


def _take_small_slot(owner):
    with _slots_lock:
        limit = scheduler.max_small_runs()
        if len(_small_runs) >= limit:
            raise InputError("training", f"the server is already training {limit} small networks at once "
                                         "(its limit, BACKPROP_MAX_SMALL_RUNS); wait for one to finish "
                                         "or pause it, then press Train again")
        _small_runs.add(owner)
        _log_thread_count()


def _free_small_slot(owner):
    with _slots_lock:
        _small_runs.discard(owner)
        _log_thread_count()


class TrainingThread:
    """Start/pause control for one run trained in the background: a loop of `trainer.step(1)` in a
    thread of its own (a big run), or a job in the shared pool of small runs (backprop.scheduler).

    It trains only while training runs: Pause (or the budget, or a divergence) ends the thread or
    the job, so a paused session costs nothing. `on_records(records)` is called after every step,
    in the thread or a pool worker, and `on_stop(reason)` once when training ends.
    """

    def __init__(self, name, on_records, on_stop):
        self.name = name
        self.on_records = on_records
        self.on_stop = on_stop
        self._run = threading.Event()
        self._stopped = threading.Event()  # wakes a paced loop at once on Pause
        self._pace = None  # None: full speed; else a slow-motion pace for a demo
        self._thread = None
        self._job = None  # the pool's job while a small run trains (and after, until the next start)
        self._rates = deque(maxlen=64)  # (time, iteration) samples for iterations/s
        self.started_at = None

    @property
    def steps_per_second(self):
        return self._pace

    @steps_per_second.setter
    def steps_per_second(self, pace):
        """Applied at the next step, in a thread or in the pool alike."""
        self._pace = pace
        job = self._job
        if job is not None and not job.ended.is_set():
            scheduler.pool().repace(job)

    @property
    def running(self):
        if self._job is not None:
            return not self._job.ended.is_set()
        return self._thread is not None and self._thread.is_alive()

    @property
    def pooled(self):
        """Whether the run trains (or last trained) in the shared pool of small runs."""
        return self._job is not None

    def start(self, trainer, budget, small=None):
        """Train up to `budget` iterations: in the pool if the run is small (`small=None`: as
        backprop.scheduler.is_small says), else in a thread of its own. Raises InputError at the
        server's cap of either kind."""
        if self.running:
            return
        if small is None:
            small = scheduler.is_small(trainer)
        if small:
            _take_small_slot(self)
            self._stopped.clear()
            self._run.set()
            self._rates.clear()
            self.started_at = time.perf_counter()
            self._rates.append((self.started_at, trainer.iteration))
            self._job = scheduler.Job(trainer, budget, self.on_records, self._job_ended,
                                      lambda: self._pace, self._rates)
            scheduler.pool().add(self._job)
            return
        _take_slot(self.name)
        self._job = None
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
        job = self._job
        if job is not None and not job.ended.is_set():
            scheduler.pool().stop(job, wait=wait)
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

    def _job_ended(self, reason):
        self._run.clear()
        _free_small_slot(self)
        _log_end(self.name, reason)
        self.on_stop(reason)

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
                time.sleep(0)  # a thread waiting for the interpreter lock gets it (see Pool._work)
        except Exception as error:  # never die silently: the page shows what happened
            reason = f"error: {error}"
        finally:
            self._run.clear()
            _free_slot(self.name)
            _log_end(self.name, reason)
            self.on_stop(reason)
