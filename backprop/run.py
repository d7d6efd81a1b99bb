"""One run's life, however it starts: `backprop train`, the Train page, the Playground, a sweep trial.

A `Run` is one trained network's record in the run store. `open()` writes the record (with what the
trainer already trained), `record()` takes step records, `pause()` marks it stopped with its
checkpoint, `resume()` running again, `finish()` writes the final metrics and checkpoint. Where a
checkpoint lives is the run store's decision (`RunStore.checkpoint_path`). A run that trains here
owns its `Trainer` and, when asked, the background thread that trains it (`start`/`stop`), and
gives pages a consistent `RunView`; a sweep trial's run is trained on a Dask worker and fed the
worker's rows (`record_rows`) and final network (`finish(network=...)`) on the client.

Every write goes through one writer thread per process (`RunWriter`), in order: SQLite
transactions and checkpoint files never run in the training thread, and rows are written in
batches (at most every FLUSH_SECONDS, or at a pause or the end). Recording is a convenience: a
failed write (a full disk) becomes a warning (`on_warning`) and training goes on.
"""

from __future__ import annotations

import atexit
import dataclasses
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np

from .diagnostics import DiagnosticsView, Divergence, RunDiagnostics, Setup, explain
from .disk import after_run_end
from .errors import InputError
from .threads import TrainingThread

FLUSH_SECONDS = 2.0  # a crash or a closed tab loses at most this much of a run's rows
# A caller that waits for a write (a page's Train, a pause) waits this long at most: a writer held up
# (a disk that hangs, a job that never returns) becomes a warning with the writer's stack, not a
# page that never answers. The write itself still happens when the writer gets to it.
WRITE_WAIT_SECONDS = 60.0
MAX_ROWS = 20_000  # recorded steps before a run keeps only every 2nd (then 4th, ...) step
ENDED = ("finished", "diverged", "stopped", "pruned", "failed")


# -- what a run records ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StepRow:
    """One step: the cost at `iteration` (the parameters after `iteration` steps: the one numbering)."""

    iteration: int
    epoch: float
    cost: float


@dataclass(frozen=True)
class Evaluation:
    """A test evaluation, named by the steps done before it (the one after step 99 is 100)."""

    iteration: int
    test_cost: float
    test_accuracy: float


@dataclass(frozen=True)
class Rows:
    """What a batch of trainer step records holds for the run store (plain, picklable: a Dask
    worker sends these to the client)."""

    steps: tuple = ()  # StepRow
    evaluations: tuple = ()  # Evaluation
    divergence: dict | None = None

    def __bool__(self):
        return bool(self.steps or self.evaluations or self.divergence)


def rows_of(records):
    """Rows from `Trainer.step` records: steps, test evaluations, and a divergence if one happened."""
    steps, evaluations, divergence = [], [], None
    for record in records:
        if "diverged" in record:
            divergence = record["diverged"]
            continue
        steps.append(StepRow(record["iteration"], record["epoch"], record["cost"]))
        if "test_iteration" in record:
            evaluations.append(Evaluation(record["test_iteration"], record["test_cost"],
                                          record["test_accuracy"]))
    return Rows(tuple(steps), tuple(evaluations), divergence)


def divergence_text(diverged, config, n_layers=None):
    """Why a run stopped and what to try, read from its set-up (the CLI and the pages say the same):
    backprop.diagnostics.explain without measurements. A run trained here says more
    (`Run.explain_divergence`: the causes its diagnostics measured).

    `diverged` is the trainer's record {iteration, layer, ...}."""
    event = Divergence(diverged["iteration"], diverged["layer"], n_layers)
    return explain(event, Setup.of_config(config, n_layers)).text


# -- what a page draws -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunView:
    """A run at one moment, read under the trainer's lock. Arrays are copies, or arrays the trainer
    never changes again."""

    run_id: int | None
    status: str  # new, running, stopped, finished, diverged, ...
    iteration: int  # steps done
    epoch: float
    seconds: float  # time spent training
    params: list  # [(W, b)] per layer, now
    initial_params: list | None  # [(W, b)] at initialisation
    optimizer_values: dict  # the optimizer's settings now
    l2: float
    l1: float
    diverged: dict | None
    last: dict | None  # the last step's row (iteration, epoch, cost)
    iterations: np.ndarray  # the recorded steps' numbers
    costs: np.ndarray
    dW_norm: np.ndarray  # (steps, layers)
    dW_mean_abs: np.ndarray
    update_ratio: np.ndarray
    unit_health: np.ndarray  # (steps, hidden layers, 2): dead and saturated shares (backprop.health)
    activation: str  # the hidden layers' activation (what unit health can show)
    evaluations: list  # {iteration (steps done), test_cost, test_accuracy}
    markers: list  # {iteration, setting, old, new}
    running: bool
    iterations_per_second: float
    budget: int
    image_shape: tuple | None
    diagnostics: DiagnosticsView | None = None  # sharpness, noise scale, a divergence explained


# -- the writer thread -----------------------------------------------------------------------------
class RunWriter:
    """The run store's and the checkpoints' writes, in order, on one thread of their own."""

    def __init__(self):
        self._jobs = queue.Queue()
        self._thread = None
        self._start_lock = threading.Lock()

    def put(self, job):
        """Queue job() (a failure is the job's own to report); returns an Event set once it ran."""
        done = threading.Event()
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                if self._thread is None:
                    atexit.register(self.drain)
                self._thread = threading.Thread(target=self._work, name="backprop-run-writer", daemon=True)
                self._thread.start()
        self._jobs.put((job, done))
        return done

    def drain(self, timeout=10.0):
        """Wait until the writes queued so far have run (at most `timeout` s). At exit: a server
        stopped (SIGTERM) right after 16 sessions closed had 5-7 of their runs still 'running' in
        the store, their last status and rows in this queue when the process ended."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return True
        done = threading.Event()
        self._jobs.put((lambda: None, done))
        return done.wait(timeout)

    def stack(self):
        """Where the writer thread is now (for the warning of a write that waited too long)."""
        thread = self._thread
        frame = sys._current_frames().get(thread.ident) if thread is not None else None
        return "".join(traceback.format_stack(frame)) if frame is not None else "(not running)"

    def _work(self):
        while True:
            job, done = self._jobs.get()
            try:
                job()
            except Exception:  # noqa: S110 (each job reports its own failures; the thread lives on)
                pass
            finally:
                done.set()


_writer = RunWriter()


def run_writer():
    """This process's writer: every run's writes, in order."""
    return _writer


# -- a run -----------------------------------------------------------------------------------------
class Run:
    """One trained network's life in the run store (see the module docstring).

    `store=None` opens the default store when the run is first opened; `record=False` keeps
    nothing (the CLI's --no-record). `trainer` is the run's own Trainer when it trains in this
    process. `on_warning(text)` hears of writes that failed. `owner` is who may rename or delete it
    (backprop.owners): a browser's token, a sweep's owner; None for a CLI run (the operator's)."""

    def __init__(self, config, trainer=None, *, store=None, record=True, source="app", name=None,
                 sweep_id=None, trial=None, on_warning=None, thread_name=None, owner=None):
        self.config = config
        self.trainer = trainer
        self.initial_params = list(trainer.network.params) if trainer is not None else None
        self.record_enabled = record
        self._store = store
        self.source, self.name, self.sweep_id, self.trial = source, name, sweep_id, trial
        self.owner = owner
        self.on_warning = on_warning or (lambda text: None)
        self.run_id = None
        self.status = "new"
        self.divergence = trainer.diverged if trainer is not None else None
        self.warning = None
        self._lock = threading.Lock()
        self._pending_steps, self._pending_evaluations = [], []
        self._last_flush = time.monotonic()
        self._stride, self._kept = 1, 0
        self._saved = None  # ((path, iteration, landscape), written path) of the last checkpoint
        self._thread = TrainingThread(thread_name or "backprop-train-run", self.record, self._on_thread_stop)
        # Measured off the training thread (backprop.diagnostics); off until configured.
        self.diagnostics = None if trainer is None else RunDiagnostics(
            trainer, name="backprop-diagnostics-" + (thread_name or "run").rsplit("-", 1)[-1])
        self.on_stop = None  # on_stop(reason) after the background thread ended (and the run was marked)

    # -- the store ---------------------------------------------------------------------------------
    @property
    def store(self):
        if self._store is None and self.record_enabled:
            from .runs import RunStore

            self._store = RunStore()
        return self._store

    @property
    def is_open(self):
        return self.run_id is not None and self.status not in ENDED[:2]

    def _write(self, job, wait):
        """Run job() on the writer thread (a failure becomes a warning); wait until it ran if asked."""
        def guarded():
            try:
                job()
            except Exception as error:  # a full disk must not stop training
                self.warning = f"Run history could not be saved: {error}"
                self.on_warning(self.warning)
        writer = run_writer()
        done = writer.put(guarded)
        if wait and not done.wait(WRITE_WAIT_SECONDS):
            self.warning = (f"Run history is being saved slowly: the writer has not answered for "
                            f"{WRITE_WAIT_SECONDS:.0f} s; training goes on and the record follows")
            self.on_warning(self.warning)
            print(f"backprop-studio: the run writer has not answered for {WRITE_WAIT_SECONDS:.0f} s; "
                  f"it is at:\n{writer.stack()}", file=sys.stderr, flush=True)
        return done

    def open(self, wait=True):
        """Write the run's record (once), with the steps its trainer already took. Returns whether
        this call opened it. Without a store (record=False) nothing is written."""
        if self.run_id is not None or self.status != "new" or not self.record_enabled:
            return False
        try:
            self.store  # noqa: B018 (a store that cannot be opened is reported here, not on the thread)
        except Exception as error:
            self.record_enabled = False
            self.warning = f"This run is not recorded: {error}"
            self.on_warning(self.warning)
            return False
        self.status = "running"
        trainer = self.trainer
        if trainer is not None and trainer.iteration:  # a restored network: its history so far
            with trainer.reading():
                rows = trainer.history.rows()
                evaluations = list(trainer.history.evaluations)
            self._take([StepRow(r["iteration"], r["epoch"], r["cost"]) for r in rows],
                       [Evaluation(e["iteration"], e["test_cost"], e["test_accuracy"]) for e in evaluations])

        def create():
            self.run_id = self.store.create(self.config, source=self.source, name=self.name,
                                            sweep_id=self.sweep_id, trial=self.trial, owner=self.owner)
            self._flush_now()
        self._write(create, wait)
        return True

    def record(self, records):
        """Take `Trainer.step` records (called from whichever thread trains)."""
        self.record_rows(rows_of(records))
        if self.diagnostics is not None:
            self.diagnostics.note(records)  # a counter check; the measuring is the diagnostics thread's

    def record_rows(self, rows):
        """Take Rows (a worker's, or rows_of a trainer's records); written in batches."""
        if rows.divergence is not None:
            self.divergence = rows.divergence
        self._take(rows.steps, rows.evaluations)
        if self.run_id is not None and time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self._last_flush = time.monotonic()
            self._write(self._flush_now, wait=False)

    def _take(self, steps, evaluations):
        if not self.record_enabled:
            return
        with self._lock:
            self._pending_evaluations.extend(evaluations)
            for step in steps:
                if step.iteration % self._stride:
                    continue
                self._pending_steps.append(step)
                self._kept += 1
                if self._kept >= MAX_ROWS * self._stride.bit_length():
                    self._stride *= 2

    def _flush_now(self):
        """Write the pending rows (on the writer thread): one transaction."""
        with self._lock:
            steps, self._pending_steps = self._pending_steps, []
            evaluations, self._pending_evaluations = self._pending_evaluations, []
        if self.run_id is None or not (steps or evaluations):
            return
        rows = [dataclasses.asdict(step) for step in steps] + [dataclasses.asdict(e) for e in evaluations]
        self.store.append_history(self.run_id, rows)

    def flush(self, wait=True):
        """Write what is pending now."""
        if self.run_id is not None or self.status == "running":
            self._write(self._flush_now, wait)

    # -- the life ----------------------------------------------------------------------------------
    def metrics(self):
        """The final figures of a run trained here: steps, last cost, last test evaluation."""
        trainer = self.trainer
        if trainer is None:
            return {}
        with trainer.reading():
            last = trainer.history.last() or {}
            metrics = {"iterations": trainer.iteration, "cost": last.get("cost")}
            if trainer.history.evaluations:
                metrics.update({k: v for k, v in trainer.history.evaluations[-1].items() if k != "iteration"})
        return metrics

    def checkpoint(self, path=None, network=None, history=None):
        """Write the run's checkpoint (the trainer's network, or the one given) at `path`, or where
        the run store keeps this run's; returns the path. Written again only when the run trained
        (or kept a loss landscape) since. Runs in the caller's thread."""
        from .checkpoint import save_checkpoint

        if path is None:
            if self.run_id is None:
                return None
            path = self.store.checkpoint_path(self.run_id)
        if network is not None:
            return str(save_checkpoint(path, network, config=self.config, history=history))
        trainer = self.trainer
        if trainer is None:
            return None
        with trainer.reading():
            key = (str(path), trainer.iteration, id(trainer.history.landscape))
            if self._saved is None or self._saved[0] != key or not self._saved[1].exists():
                self._saved = (key, save_checkpoint(path, trainer.network, config=self.config,
                                                    history=trainer.history))
        return str(self._saved[1])

    def _end(self, status, metrics, checkpoint, wait, on_done=None):
        self.status = status

        def end():
            try:
                if self.run_id is None:
                    return
                self._flush_now()
                path = checkpoint() if callable(checkpoint) else checkpoint
                metrics_now = metrics() if callable(metrics) else metrics
                if status == "running":
                    self.store.mark_running(self.run_id)
                else:
                    self.store.finish(self.run_id, metrics_now, status=status, checkpoint_path=path)
                    after_run_end(self.store, path)  # the disk quota: what this run wrote is counted
            finally:
                if on_done is not None:
                    on_done()
        if self.run_id is None and not self.record_enabled:
            if on_done is not None:
                on_done()
            return None
        return self._write(end, wait)

    def pause(self, wait=True):
        """Not training now: the run is 'stopped', with its checkpoint; `resume()` goes on in it."""
        if self.run_id is None and self.status == "new":
            return
        if self.status not in ENDED:
            self._end("stopped", self._metrics_with_divergence, self.checkpoint, wait)

    def resume(self, wait=True):
        """Train on in the same run after a pause: 'running' again, owned by this process."""
        if self.status == "stopped":
            self._end("running", {}, None, wait)

    def finish(self, status=None, metrics=None, *, network=None, history=None, checkpoint=True,
               checkpoint_path=None, wait=True, on_done=None):
        """The run is over: its status (default: 'diverged' if a divergence was recorded, else
        'finished'), final metrics (default: `metrics()`) and checkpoint (the trainer's network, or
        `network`; `checkpoint=False` keeps none, `checkpoint_path` names one written elsewhere).
        `on_done()` is called once it is all written (even if writing failed)."""
        if status is None:
            status = "diverged" if self.divergence is not None else "finished"
        if self.status in ENDED and self.status != "stopped":
            if on_done is not None:
                on_done()
            return None

        def final_metrics():
            values = dict(self.metrics() if metrics is None else metrics)
            if self.divergence is not None:
                values.setdefault("divergence", self.divergence)
            for key, value in self._diagnostics_metrics().items():
                values.setdefault(key, value)
            return values

        def final_checkpoint():
            if checkpoint_path is not None:
                return str(checkpoint_path)
            if not checkpoint:
                return None
            try:
                return self.checkpoint(network=network, history=history)
            except (OSError, InputError) as error:
                self.warning = f"The checkpoint of run {self.run_id} could not be written: {error}"
                self.on_warning(self.warning)
                return None
        return self._end(status, final_metrics, final_checkpoint, wait, on_done)

    def _metrics_with_divergence(self):
        values = self.metrics()
        if self.divergence is not None:
            values["divergence"] = self.divergence
        values.update(self._diagnostics_metrics())
        return values

    def _diagnostics_metrics(self):
        """What the run store keeps of the diagnostics: the explanation, the last λ_max and B_simple."""
        if self.diagnostics is None:
            return {}
        return self.diagnostics.view().summary()

    def discard(self):
        """Forget a run opened for a start that was refused (nothing was trained in it)."""
        def remove():
            if self.run_id is not None:
                self.store.delete(self.run_id)
                self.run_id = None
        if self.run_id is not None or self.status == "running":
            self._write(remove, wait=True)
        self.status = "new"

    def explain_divergence(self):
        """divergence_text for this run (None unless it diverged)."""
        if self.divergence is None:
            return None
        if self.diagnostics is not None:
            return self.diagnostics.explain_divergence(self.divergence).text
        return divergence_text(self.divergence, self.config)

    def restore(self, params, history=None):
        """Go on from saved parameters (a checkpoint, a recorded run): the network takes them, and
        with a matching history, the run continues at its iteration and epoch."""
        trainer = self.trainer
        with trainer.lock:
            trainer.network.set_params(params)
            if history is not None and history.n_layers == trainer.network.n_layers:
                trainer.history = history
                last = history.last()
                if last is not None:
                    trainer.iteration = last["iteration"] + 1
                    trainer.samples_seen = int(round(last["epoch"] * len(trainer.x_train)))

    def keep_landscape(self, landscape):
        """Keep a loss landscape with the run's history (its checkpoint carries it to Compare); a
        paused run's checkpoint is written again now, a running one's at its next pause."""
        with self.trainer.reading():
            self.trainer.history.landscape = landscape
        if not self.running and self.status == "stopped":
            self._write(lambda: self.checkpoint(), wait=True)

    # -- training here, in the background --------------------------------------------------------
    @property
    def running(self):
        return self._thread.running

    @property
    def pooled(self):
        """Whether it trains (or last trained) in the shared pool of small runs (backprop.scheduler)
        rather than in a capped thread of its own."""
        return self._thread.pooled

    def start(self, budget=None, steps_per_second=None):
        """Train in the background up to `budget` iterations (the set-up's by default): a small run
        in the shared pool, a big one in a thread of its own (backprop.threads).

        `steps_per_second` sets a pace (as set_pace); without it the pace set before is kept.
        Raises InputError when the server's cap for its kind is reached (nothing is left behind)."""
        trainer = self.trainer
        if trainer.diverged is not None:
            raise InputError("training", "this run diverged; lower the learning rate and press Reset to "
                                         "start again")
        budget = self.config.iterations if budget is None else budget
        if trainer.iteration >= budget:
            raise InputError("iterations", f"the budget of {budget} iterations is reached; raise it to "
                                           "train on")
        opened = self.open()
        self.diagnostics.begin()
        if steps_per_second is not None:
            self._thread.steps_per_second = steps_per_second
        try:
            self._thread.start(trainer, budget)
        except InputError:  # a cap: no empty run left 'running' behind
            if opened and not trainer.iteration:
                self.discard()
            else:
                self.pause()
            raise
        self.resume()

    def set_pace(self, steps_per_second):
        """Full speed (None) or a slow-motion pace, applied at once, even while training."""
        self._thread.steps_per_second = steps_per_second

    def stop(self):
        """End the background thread after its current step (and wait for it)."""
        self._thread.stop(wait=True)

    def step(self, k=1):
        """k steps now, in the caller's thread; the run is then paused (or diverged)."""
        self.stop()
        self.open()
        self.diagnostics.begin()
        records = self.trainer.step(k)
        self.record(records)
        if self.trainer.diverged is not None:
            self.finish("diverged")
        else:
            self.pause()
        return records

    def iterations_per_second(self):
        return self._thread.iterations_per_second() if self.running else 0.0

    def _on_thread_stop(self, reason):
        if reason == "diverged":
            self.finish("diverged")
        elif reason == "budget":
            self.finish("finished")
        elif reason.startswith("error"):
            self.finish("stopped")
        else:
            self.pause()
        if self.on_stop is not None:
            self.on_stop(reason)

    # -- reading ----------------------------------------------------------------------------------
    def view(self):
        """A consistent RunView of a run trained here."""
        trainer = self.trainer
        with trainer.reading():
            history = trainer.history
            running = self.running
            return RunView(
                run_id=self.run_id, status=self.status,
                iteration=trainer.iteration, epoch=trainer.epoch, seconds=trainer.seconds,
                params=list(trainer.network.params), initial_params=self.initial_params,
                optimizer_values=trainer.optimizer.values(), l2=trainer.l2, l1=trainer.l1,
                diverged=trainer.diverged,
                last=history.last(), iterations=history.iterations, costs=history.costs,
                dW_norm=history.layer_stat("dW_norm"), dW_mean_abs=history.layer_stat("dW_mean_abs"),
                update_ratio=history.layer_stat("update_ratio"), unit_health=history.unit_health(),
                activation=trainer.network.activation, evaluations=list(history.evaluations),
                markers=list(history.markers), running=running,
                iterations_per_second=self.iterations_per_second() if running else 0.0,
                budget=self.config.iterations, image_shape=getattr(trainer.data, "image_shape", None),
                diagnostics=self.diagnostics.view())
