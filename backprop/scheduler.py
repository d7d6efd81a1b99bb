"""Small runs share a few worker threads in turns; big runs keep a thread each (backprop.threads).

A Playground network ([2, 4, 2, 1] on 500 points) takes about 0.4 ms a step, nearly all of it
Python's own work, so a thread per run buys nothing but contention for the interpreter lock, and
the server's cap of BACKPROP_MAX_TRAINING_THREADS (4, sized for MNIST runs of gigabytes) would
refuse the fifth student of a class. Runs whose step is cheap (`is_small`) are stepped instead by
one process-wide `Pool`: at most `pool_workers()` threads (the cores this process may use) take
turns over the runnable small runs, round-robin, each turn a time slice of SLICE_SECONDS of steps,
so 16 runs on 2 cores each get an equal share of the time and no run holds a core for long.

"Small" is the step's cost: parameters x the samples of the costliest step (a mini-batch, the
whole training set for full-batch training, or a test evaluation of up to EVAL_BLOCK samples),
at most SMALL_STEP_COST multiply-adds. Measured on the 2-core development machine, loaded (load
average 7; `python benchmarks/bench_scheduler.py --step-costs`): 0.3-0.45 ms a step for the
Playground's set-ups on its 500 points (up to its largest network on batches of 30), 1 ms at the
limit for [784, 16, 1] on batches of 80 and 2.4-5 ms for the Playground's largest network on
batches of 1,080-2,400 (its per-unit work grows with the batch), so a 5 ms slice ends within about
a step. Over the limit: the Playground's largest network on batches of 4,500, [784, 16, 1] on 300
images full-batch (3.6x the limit), [784, 196, 1] on 300 images (44x, 9 ms a step) and the
tutorial's MNIST run (1,700x, 0.3 s a step): those keep their own capped thread and the memory
budget. A small run's training arrays are small too (at most SMALL_STEP_COST parameters or
samples: under 100 MB at worst, KBs for the Playground), and at most BACKPROP_MAX_SMALL_RUNS (64)
train at once.

Why a pool and not a thread each (`python benchmarks/bench_scheduler.py`, 16 Playground runs, two
runs of 2-3 rounds at load averages 8 and 14): the runs share alike either way (slowest/fastest
0.77-0.79 in the medians); a thread each got about the same total steps/s at load 8 and 1.7x more
at load 14 (16 runnable threads take a bigger share of a machine crowded by other processes; with
the interpreter lock they make no more room for steps on a machine of their own); but beside 16
training threads a thread standing for the server (a page's script, the event loop) waited for
the interpreter a median 14-17 ms (95th percentile 105-156 ms), beside the pool's 2 workers 2-6 ms
(95th percentile 14-37 ms), and a run writer's job (rows and a checkpoint) took twice as long
(379 ms against 183 ms at load 14). One worker instead of 2 stepped fewer runs a second at load 14.

This module knows nothing of slots: `backprop.threads` counts the runs (and logs their number)
and asks the pool to step them; `Job.on_end(reason)` is how the pool tells it a run ended.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque

from .budget import parameter_count
from .network import EVAL_BLOCK

SMALL_STEP_COST = 2**20  # multiply-adds of a step at most, for a run to be small (see the docstring)
SLICE_SECONDS = 0.005  # one turn of a small run: steps until this much time has passed
IDLE_SECONDS = 2.0  # a worker with nothing to do for this long ends (a new run starts one again)
# While the server draws a page's live views (`foreground()`), a worker waits before its next turn,
# at most this long: drawing first, and training still has at least 5 ms in every 25.
FOREGROUND_WAIT_SECONDS = 0.02
POOL_PREFIX = "backprop-pool-"


def step_cost(sizes, samples_per_step, evaluation_samples=0):
    """Multiply-adds of a network's costliest step: parameters x the most samples one step sees
    (its batch, or a test evaluation's block)."""
    samples = max(int(samples_per_step), min(int(evaluation_samples), EVAL_BLOCK))
    return parameter_count([int(n) for n in sizes]) * samples


def trainer_step_cost(trainer):
    """step_cost of what a Trainer will do: its network, its batch (or the whole training set)
    and its test set."""
    n_train = len(trainer.x_train)
    batch = trainer.batch_size or n_train
    n_test = len(trainer.x_test) if trainer.x_test is not None else 0
    return step_cost(trainer.network.sizes, batch, n_test)


def is_small(trainer):
    """Whether this trainer's runs share the pool (else they take a capped thread of their own)."""
    return trainer_step_cost(trainer) <= SMALL_STEP_COST


def pool_workers():
    """Worker threads the pool runs at most: BACKPROP_POOL_WORKERS, else the cores this process
    may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        return max(1, int(os.environ.get("BACKPROP_POOL_WORKERS", cores)))
    except ValueError:
        return max(1, cores)


def max_small_runs():
    """Server-wide cap on small runs training at once (env BACKPROP_MAX_SMALL_RUNS, default 64)."""
    try:
        return max(1, int(os.environ.get("BACKPROP_MAX_SMALL_RUNS", "64")))
    except ValueError:
        return 64


ENDED = object()  # what a turn returns when the run is over (its reason is in job.reason)


class Job:
    """One small run in the pool: its trainer, its budget, its pace and what it tells its owner.

    `on_records(records)` after every step (in a pool worker), `on_end(reason)` once when it ended
    ("paused", "budget", "diverged", "error: ..."), in a thread of its own or in the thread that
    stopped it. `pace()` returns steps per second or None (full speed), read before every step.
    """

    def __init__(self, trainer, budget, on_records, on_end, pace, rates):
        self.trainer, self.budget = trainer, budget
        self.on_records, self.on_end, self.pace = on_records, on_end, pace
        self.rates = rates  # (time, iteration) samples, the owner's iterations/s
        self.stop_requested = False
        self.busy = None  # the worker thread running its turn now
        self.due = None  # paced: when its next step is due (perf_counter); None: now
        self.reason = None
        self.ended = threading.Event()
        self._last_due = time.perf_counter()

    def repace(self):
        """The pace changed: the next step's time is computed again from the new pace."""
        self.due = None

    def turn(self, slice_seconds):
        """Steps until the slice is used up. Returns None (more to do), the time the next paced step
        is due, or ENDED (self.reason says why)."""
        trainer = self.trainer
        deadline = time.perf_counter() + slice_seconds
        try:
            while True:
                if self.stop_requested:
                    self.reason = "paused"
                    return ENDED
                if trainer.iteration >= self.budget:
                    self.reason = "budget"
                    return ENDED
                pace = self.pace()
                if pace:
                    now = time.perf_counter()
                    if self.due is None:
                        self.due = max(self._last_due + 1.0 / pace, now - 1.0)
                    if now < self.due:
                        return self.due
                    self._last_due, self.due = self.due, None
                records = trainer.step(1)
                now = time.perf_counter()
                if not self.rates or now - self.rates[-1][0] > 0.1:
                    self.rates.append((now, trainer.iteration))
                self.on_records(records)
                if trainer.diverged is not None:
                    self.reason = "diverged"
                    return ENDED
                if now >= deadline:
                    return None
        except Exception as error:  # never die silently: the page shows what happened
            self.reason = f"error: {error}"
            return ENDED

    def end(self):
        try:
            self.on_end(self.reason)
        finally:
            self.ended.set()


class Pool:
    """Worker threads taking turns over small runs (see the module docstring)."""

    def __init__(self, workers=None, slice_seconds=SLICE_SECONDS, idle_seconds=IDLE_SECONDS,
                 foreground_wait=FOREGROUND_WAIT_SECONDS):
        self._size = workers
        self.slice_seconds = slice_seconds
        self.idle_seconds = idle_seconds
        self.foreground_wait = foreground_wait
        self._cond = threading.Condition()
        self._jobs = deque()  # round-robin order: a job goes to the back after its turn
        self._workers = set()
        self._numbers = 0
        self._foreground = 0  # drawings in progress (see foreground())

    @property
    def size(self):
        return self._size or pool_workers()

    def workers(self):
        """The worker threads alive now."""
        with self._cond:
            return len(self._workers)

    def jobs(self):
        with self._cond:
            return len(self._jobs)

    def add(self, job):
        """Step `job` in turns from now on, until it ends or `stop(job)`."""
        with self._cond:
            self._jobs.append(job)
            if len(self._workers) < min(self.size, len(self._jobs)):
                self._numbers += 1
                worker = threading.Thread(target=self._work, name=f"{POOL_PREFIX}{self._numbers}",
                                          daemon=True)
                self._workers.add(worker)
                self._log()
                worker.start()
            self._cond.notify()

    def stop(self, job, wait=True):
        """Ask `job` to end after its current step; with wait, until it has (its on_end ran).
        A job between turns ends here, in the caller's thread."""
        with self._cond:
            job.stop_requested = True
            here = job.busy is None and job in self._jobs
            if here:
                self._jobs.remove(job)
                job.reason = "paused"
            self._cond.notify_all()
        if here:
            job.end()
        elif wait and job.busy is not threading.current_thread():
            job.ended.wait(timeout=30)

    def repace(self, job):
        """The job's pace changed: wake a worker that waits for its next step."""
        with self._cond:
            job.repace()
            self._cond.notify_all()

    @contextlib.contextmanager
    def foreground(self):
        """Work of the server's that must not wait behind the workers (a page drawing its live
        views): while any is in progress, the workers wait between turns (at most foreground_wait
        each time). The workers' steps are pure Python and hold the interpreter lock; a drawing's
        numpy and PNG calls each let go of it and then waited a switch interval (5 ms) to get it
        back: beside one Playground run, the Playground's maps took about 200 ms to draw where they
        need 12 ms of CPU, and beside 16 runs the server fell so far behind that Streamlit dropped
        each run's messages unsent."""
        with self._cond:
            self._foreground += 1
        try:
            yield
        finally:
            with self._cond:
                self._foreground -= 1
                if not self._foreground:
                    self._cond.notify_all()

    def _yield_to_foreground(self):
        """Wait while the server draws, up to foreground_wait. Called with the lock held."""
        deadline = time.perf_counter() + self.foreground_wait
        while self._foreground:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._cond.wait(left)

    def _log(self):
        print(f"backprop-studio: training pool workers: {len(self._workers)}", file=sys.stderr, flush=True)

    def _next(self):
        """The next job to step (round-robin), waiting while none is runnable; None: this worker
        has been idle for idle_seconds with no job for it, and ends. Called with the lock held."""
        idle_since = time.perf_counter()
        while True:
            now = time.perf_counter()
            earliest = None
            for job in self._jobs:
                if job.busy is not None:
                    continue
                if job.due is not None and job.due > now and not job.stop_requested:
                    earliest = job.due if earliest is None else min(earliest, job.due)
                    continue
                self._jobs.remove(job)
                self._jobs.append(job)
                job.busy = threading.current_thread()
                return job
            if earliest is None and len(self._workers) > len(self._jobs) and \
                    now - idle_since >= self.idle_seconds:
                return None
            self._cond.wait(self.idle_seconds if earliest is None else earliest - now)

    def _work(self):
        me = threading.current_thread()
        while True:
            with self._cond:
                self._yield_to_foreground()
                job = self._next()
                if job is None:
                    self._workers.discard(me)
                    self._log()
                    return
            outcome = job.turn(self.slice_seconds)
            # Let a thread that waits for the interpreter lock have it now. Without this, each of
            # the run writer's SQLite calls (each lets go of the lock) waited for it behind the
            # workers' pure-Python steps: two Playground runs made a pause take 13.4 s and closing a
            # tab 31 s (a write each, behind a queue of writes); with it, 0.53 s and 0.18 s.
            time.sleep(0)
            with self._cond:
                job.busy = None
                if outcome is ENDED:
                    self._jobs.remove(job)
                self._cond.notify_all()
            if outcome is ENDED:
                # Marking the run (its checkpoint, a write to the store) must not hold up the others.
                threading.Thread(target=job.end, name=f"{POOL_PREFIX}end", daemon=True).start()


_pool = Pool()


def foreground():
    """The process-wide pool's `Pool.foreground()`: `with foreground(): draw()`."""
    return _pool.foreground()


def pool():
    """This process's pool of small runs."""
    return _pool
