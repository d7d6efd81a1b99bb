"""A trial on a Dask worker: `run_trial` builds the set-up, loads the data through the data cache
and trains it exactly as `backprop train` does. Every REPORT_SECONDS (and at each of the pruner's
reports) it puts a `Progress` message (the new `backprop.run.Rows`, and the pruner's `Report`s)
into a Dask Queue and reads a Dask Variable that says whether it must stop (pruned by Optuna, or
the sweep was cancelled). A cancel does not wait for that cadence: a thread beside the training
waits on the sweep's cancel Event (a Dask Event, set once by the client) and the training loop
reads what it heard at every step, so a cancelled trial ends within a step (it skips its final
evaluation, and sends no network back). It returns a `TrialOutcome`.

A short trial costs the scheduler no round trip of its own: its `Started` is sent with its first
`Progress` (REPORT_SECONDS in, or at the pruner's first report), the rows and reports not yet sent
come back in the `TrialOutcome` (with the worker and the attempt, so the client opens the run then
if it heard no Started), the network and history come back only from a finished trial (the one the
client keeps), and the Queue, the stop Variable and the cancel watcher are made once per sweep in
each worker process and shared by its trials (`_channels`).

Everything that crosses between the worker and the client is one of the small frozen records
below (pickled by Dask); the client turns them into the trial's run (backprop.run.Run).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass

from ..errors import InputError
from ..run import Rows, rows_of

REPORT_SECONDS = 0.2  # a worker's rows reach the client, and it checks for a stop, this often
STOP_READ_SECONDS = 8  # the stop flag's read gives up after this long (a scheduler gone)
VERDICT_SECONDS = 2  # after a pruner's report, how long a trial waits for the client to hear it
CANCEL_WAIT_SECONDS = 0.5  # the cancel watcher's wait on the Dask Event, renewed until its trial ends


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs for one trial; the channels are Dask Queue/Variable names."""

    number: int
    config: object  # TrainConfig
    progress_channel: str
    stop_channel: str
    report_every: int | None = None  # steps between the pruner's reports (None: no pruner)
    metric: str = "test_cost"  # what the sweep optimises (backprop.sweep.space.METRICS)
    cancel_channel: str | None = None  # the sweep's cancel Event (a Dask Event); None: the stop flag only


@dataclass(frozen=True)
class Started:
    """An attempt at a trial began training on `worker` (a trial run again has a new attempt)."""

    number: int
    attempt: str
    worker: str


@dataclass(frozen=True)
class Report:
    """The pruner's intermediate value: the sweep's metric after `step` steps (not part of the run;
    a `best_` metric's best so far)."""

    step: int
    value: float


@dataclass(frozen=True)
class Progress:
    """An attempt's new step rows and test evaluations, and the pruner's reports since the last."""

    number: int
    attempt: str
    rows: Rows
    reports: tuple = ()  # Report


@dataclass(frozen=True)
class TrialOutcome:
    """How an attempt ended: 'finished', 'diverged' or 'stopped' (pruned or cancelled), its final
    figures (those `backprop train` prints), and its trained network and history."""

    number: int
    attempt: str
    status: str
    iterations: int = 0
    seconds: float | None = None
    train_cost: float | None = None
    train_accuracy: float | None = None
    test_cost: float | None = None
    test_accuracy: float | None = None
    network: object = None  # a finished trial's only (the client keeps it as the run's checkpoint)
    history: object = None
    divergence: dict | None = None
    metric_value: float | None = None  # the sweep's metric (a best_ one: best over the evaluations)
    worker: str | None = None  # where it ran
    rows: Rows | None = None  # the rows no Progress carried (the client records them before the end)
    reports: tuple = ()  # the pruner's reports no Progress carried

    def metrics(self):
        """The run store's final metrics (what `backprop train` records)."""
        values = {"train_cost": self.train_cost, "train_accuracy": self.train_accuracy,
                  "test_cost": self.test_cost, "test_accuracy": self.test_accuracy,
                  "iterations": self.iterations, "seconds": self.seconds}
        if self.seconds is None:  # stopped before it trained
            return {}
        return {key: value for key, value in values.items() if value is not None}

    @property
    def value(self):
        """What Optuna is told: the sweep's metric (the training cost where it has none)."""
        if self.metric_value is not None:
            return self.metric_value
        return self.test_cost if self.test_cost is not None else self.train_cost


@dataclass(frozen=True)
class LostAttempt:
    """An attempt whose worker died (killed, out of memory): its run, and where the trial ran next."""

    worker: str | None
    run_id: int | None = None
    ran_again_on: str | None = None

    def text(self, number):
        where = f"ran again on {self.ran_again_on}" if self.ran_again_on else "not run again"
        return f"trial {number}: worker {self.worker or '(unknown)'} died; {where}"

    def to_dict(self):
        return {"worker": self.worker, "run": self.run_id, "ran_again_on": self.ran_again_on}

    @classmethod
    def from_dict(cls, data):
        return cls(data.get("worker"), data.get("run"), data.get("ran_again_on"))


def _must_stop(stop, number, heard=None):
    """Whether the client says stop. With `heard` (the step of a pruner's report just sent): wait
    (at most VERDICT_SECONDS) until the client has heard that report, so a trial the pruner stops
    ends at that report, not one report later."""
    deadline = time.monotonic() + VERDICT_SECONDS
    while True:
        flags = stop.get(timeout=STOP_READ_SECONDS)
        if flags["all"] or number in flags["trials"]:
            return True
        if heard is None or flags.get("heard", {}).get(str(number), -1) >= heard \
                or time.monotonic() > deadline:
            return False
        time.sleep(0.005)


class _CancelWatch:
    """A thread that waits on the sweep's cancel Event (a Dask Event: the scheduler answers the wait as
    soon as the client sets it) and raises a local flag the training loop reads at every step, for
    nothing. One per sweep in a worker process, shared by its trials (watch()); it ends once no trial
    of its sweep has run for IDLE_SECONDS, or when the scheduler cannot be asked (the stop flag's
    read at the report cadence then says what happened)."""

    IDLE_SECONDS = 30.0

    def __init__(self, name):
        from distributed import Event

        self.name = name
        self.cancelled = threading.Event()
        self.users = 0
        self.idle_since = time.monotonic()
        self._event = Event(name)  # made in the task's thread: the worker's client
        if self._event.is_set():  # once per sweep and worker: a trial queued before a cancel stops
            self.cancelled.set()
        self._thread = threading.Thread(target=self._watch, name="backprop-trial-cancel", daemon=True)
        self._thread.start()

    def _watch(self):
        while not self.cancelled.is_set():
            try:
                if self._event.wait(timeout=CANCEL_WAIT_SECONDS):
                    self.cancelled.set()
                    break
            except Exception:  # noqa: BLE001 (the scheduler is gone: the stop flag's read reports it)
                break
            with _channels_lock:
                if self.users == 0 and time.monotonic() - self.idle_since > self.IDLE_SECONDS:
                    break
        with _channels_lock:
            if _watchers.get(self.name) is self:
                del _watchers[self.name]

    def close(self):
        with _channels_lock:
            self.users -= 1
            self.idle_since = time.monotonic()


class _NoWatch:
    cancelled = threading.Event()  # never set

    def close(self):
        pass


# A worker process's channels to the client, per sweep (the names are the sweep's): made once, shared
# by the sweep's trials on this worker; the oldest forgotten past MAX_CHANNELS.
MAX_CHANNELS = 16
_channels = {}  # name -> distributed Queue or Variable
_watchers = {}  # cancel channel -> _CancelWatch
_channels_lock = threading.Lock()


def _channel(kind, name):
    with _channels_lock:
        made = _channels.get(name)
    if made is None:
        made = kind(name)  # a Queue is created on the scheduler: a round trip, once per sweep
        with _channels_lock:
            _channels[name] = made
            while len(_channels) > MAX_CHANNELS:
                del _channels[next(iter(_channels))]
    return made


def watch(name):
    """The sweep's cancel watcher in this worker process (made by its first trial here); close()
    when the trial ends."""
    with _channels_lock:
        watcher = _watchers.get(name)
        if watcher is not None and watcher._thread.is_alive():
            watcher.users += 1
            return watcher
    watcher = _CancelWatch(name)
    with _channels_lock:
        watcher.users += 1
        _watchers[name] = watcher
    return watcher


def _test_cost(trainer, records):
    """The test cost now: the trainer's own evaluation of this step when it made one."""
    last = records[-1] if records else {}
    if last.get("test_iteration") == trainer.iteration:
        return float(last["test_cost"])
    if trainer.x_test is None:
        return None
    return float(trainer.network.evaluate(trainer.x_test, trainer.y_test)[0])


class _MetricTracker:
    """The sweep's metric over a trial: its value now (a test metric from the trainer's own
    evaluation of this step when it made one) and its best over the evaluations seen."""

    def __init__(self, metric):
        from .space import METRICS

        self.metric = metric
        self.base = metric.removeprefix("best_")
        self.best_of = metric.startswith("best_")
        self.minimize = METRICS[metric] == "minimize"
        self.best = None

    def seen(self, value):
        if value is None or not math.isfinite(value):
            return
        if self.best is None or (value < self.best if self.minimize else value > self.best):
            self.best = float(value)

    def step(self, trainer, records):
        """A test metric's value at each test evaluation the trainer made in these records."""
        if self.best_of and self.base.startswith("test_"):
            for record in records:
                if record.get("test_iteration") is not None:
                    self.seen(record.get(self.base))

    def now(self, trainer, records):
        """The metric after this step (for the pruner), or None (no test set)."""
        if self.base == "test_cost":
            value = _test_cost(trainer, records)
        elif self.base == "test_accuracy":
            last = records[-1] if records else {}
            if last.get("test_iteration") == trainer.iteration:
                value = float(last["test_accuracy"])
            elif trainer.x_test is None:
                value = None
            else:
                value = float(trainer.network.evaluate(trainer.x_test, trainer.y_test)[1])
        else:
            value = float(trainer.evaluate()[self.base])
        self.seen(value)
        return self.best if self.best_of else value

    def final(self, result):
        value = result.get(self.base)
        if value is None and self.base.startswith("test_"):  # no test set: the training figure
            value = result.get(self.base.replace("test_", "train_"))
        value = None if value is None or not math.isfinite(value) else float(value)
        self.seen(value)
        return self.best if self.best_of else value


def run_trial(task, data=None):
    """Train one trial on a Dask worker; `data` is given only for data the client alone has."""
    from distributed import Queue, Variable, get_worker

    from ..trainer import Trainer

    attempt = uuid.uuid4().hex[:12]
    progress, stop = _channel(Queue, task.progress_channel), _channel(Variable, task.stop_channel)
    config = task.config
    watch_ = watch(task.cancel_channel) if task.cancel_channel else _NoWatch()
    try:
        # With a cancel channel the watcher knows of a cancel (the client's stop-all comes with it);
        # without one, the stop flag is asked.
        if watch_.cancelled.is_set() or (not task.cancel_channel and _must_stop(stop, task.number)):
            return TrialOutcome(task.number, attempt, "stopped")
        worker = get_worker().address
        if data is None:
            try:
                data = config.load_data()
            except InputError as error:  # e.g. a remote worker without a downloaded data set
                raise InputError(error.field, f"on worker {worker}: {error.message}") from None
        started = time.perf_counter()
        trainer = Trainer.from_config(config, data)
        return _train(task, trainer, progress, stop, watch_.cancelled, attempt, worker, started)
    finally:
        watch_.close()


def _train(task, trainer, progress, stop, cancelled, attempt, worker, started):
    """The training loop of run_trial: a step at a time, the cancel flag read after each."""
    config = task.config
    records, reports, status, last_report = [], [], "finished", time.perf_counter()
    said_started = False
    tracker = _MetricTracker(task.metric)
    while trainer.iteration < config.iterations:
        if cancelled.is_set():
            status = "stopped"
            break
        step = trainer.step(1)
        records.extend(step)
        tracker.step(trainer, step)
        if trainer.diverged is not None:
            status = "diverged"
            break
        due = task.report_every is not None and trainer.iteration % task.report_every == 0
        if due:
            value = tracker.now(trainer, step)
            if value is not None and math.isfinite(value):
                reports.append(Report(trainer.iteration, value))
        now = time.perf_counter()
        if due or now - last_report >= REPORT_SECONDS:
            if not said_started:  # the client opens the trial's run (a short trial: at its end)
                progress.put(Started(task.number, attempt, worker))
                said_started = True
            progress.put(Progress(task.number, attempt, rows_of(records), tuple(reports)))
            heard = reports[-1].step if due and reports else None
            records, reports, last_report = [], [], now
            if _must_stop(stop, task.number, heard=heard):
                status = "stopped"
                break
    rest = {"worker": worker, "rows": rows_of(records) if records else None, "reports": tuple(reports)}
    if status == "stopped" and cancelled.is_set():  # the sweep was cancelled: end now, nothing to keep
        return TrialOutcome(task.number, attempt, "stopped", trainer.iteration,
                            time.perf_counter() - started, **rest)
    result = trainer.evaluate()
    seconds = time.perf_counter() - started
    kept = status == "finished"  # the client keeps a finished trial's network, and no other's
    return TrialOutcome(task.number, attempt, status, trainer.iteration, seconds, result["train_cost"],
                        result["train_accuracy"], result.get("test_cost"), result.get("test_accuracy"),
                        trainer.network if kept else None, trainer.history if kept else None,
                        trainer.diverged, tracker.final(result), **rest)
