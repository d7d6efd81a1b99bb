"""Sweeps: many set-ups trained at once, on this machine or a Dask cluster, chosen by Optuna.

The client (the CLI or the app) owns the Optuna study: it asks for trials, hands each to Dask as
one task, and tells Optuna the result (Optuna's ask-and-tell interface). Workers only train:
`run_trial` builds the set-up, loads the data through the data cache, trains, and every
REPORT_SECONDS (and at each test evaluation) puts its new rows into a Dask Queue and reads a Dask
Variable that says whether it must stop (pruned by Optuna, or the sweep was cancelled).

The embedded cluster is a LocalCluster (one single-threaded worker process per core) started in
a separate Python process (`python -m backprop.sweep serve N`): Dask spawns its workers, and a
spawned worker re-imports its parent's `__main__`; under Streamlit that is the page being run,
so the app never spawns from its own process. The serving process ends when its parent does.

The study is kept in an Optuna journal file beside the run store, so a sweep survives the
client: `Sweep(store, sweep_id).run()` (`backprop sweep --resume ID`) continues it, and trials
that were running or cancelled are asked again. Each trial is a run in the run store (source
"sweep"); the sweep itself is a row of the store's sweeps table.

Space syntax (one `--vary` per setting): `name=v1,v2,v3` a list of values (layer sizes: the
alternatives separated by `|`, e.g. `layers=196,1|64,1`), or `name=low:high` a range sampled by
the random and TPE strategies, on the setting's own scale (log for a learning rate) unless
`:log` or `:linear` follows.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

from . import paths
from .config import TrainConfig
from .data.tasks import nominal_size
from .errors import InputError
from .setting import Setting
from .settings import DATA, SETTINGS, SWEEPABLE

STRATEGIES = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "halving")
DEFAULT_TRIALS = 16  # random and TPE, when --trials is not given
MAX_TRIALS = 1000
MAX_VALUES = 64  # values in one list
REPORT_SECONDS = 0.2  # a worker's rows reach the client, and it checks for a stop, this often
CONNECT_SECONDS = 8  # an unreachable scheduler is reported after this long
CLUSTER_START_SECONDS = 60
EVALUATIONS_PER_TRIAL = 10  # test evaluations per trial: the pruner's intermediate values
# One BLAS thread per worker process, and the engine's own batch splitting off: the workers are
# the parallelism (see backprop/blas_threads.py and backprop/parallel.py).
WORKER_ENV = {"BACKPROP_ENGINE_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}
# The sweep's own settings, declared like the training settings (backprop/setting.py).
TRIALS = Setting("trials", "int", None, "Trials", "How many trials (random and TPE; a grid runs all its "
                 "set-ups, or at most this many)", low=1, high=MAX_TRIALS, none_word="")
SAMPLER_SEED = Setting("seed", "int", 0, "Sampler seed", "The same seed, space and strategy choose the "
                       "same trials", low=0, high=2**32 - 1)
WORKERS = Setting("workers", "int", None, "Local worker processes", "Default: one per core", low=1, high=64,
                  none_word="")
TRIAL_STATUSES = ("queued", "running", "finished", "pruned", "failed", "diverged", "cancelled")


# -- the space ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dimension:
    """One setting a sweep varies: a list of values, or a range (low, high) for random/TPE."""

    name: str
    values: tuple | None = None  # parsed values, for a list
    low: float | None = None
    high: float | None = None
    log: bool = False
    text: str = ""  # as given, e.g. "learning_rate=0.01,0.1"; kept in the sweep's record

    @property
    def setting(self):
        return SETTINGS[self.name]

    def choices(self):
        """The values as Optuna sees them: the settings table's text form (plain and hashable)."""
        return tuple(self.setting.encode(value) for value in self.values)

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.values is not None:
            return CategoricalDistribution(self.choices())
        if self.setting.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(float(self.low), float(self.high), log=self.log)

    def value(self, optuna_value):
        """The setting's Python value for what Optuna chose."""
        return self.setting.parse(optuna_value)


def _sweepable_text():
    return ", ".join(SWEEPABLE)


def parse_dimension(text, base=None):
    """'learning_rate=0.01,0.1' -> Dimension; every value is checked by the settings table (and,
    with a base set-up, as part of it). A bad one raises InputError naming the setting."""
    name, sep, spec = str(text).partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise InputError("vary", f"{text!r} is not NAME=VALUES (e.g. learning_rate=0.01,0.1 or "
                                 f"layers=196,1|64,1); sweepable: {_sweepable_text()}")
    if name == "lr":
        name = "learning_rate"
    if name not in SETTINGS:
        raise InputError("vary", f"{name!r} is not a setting; sweepable: {_sweepable_text()}")
    setting = SETTINGS[name]
    if not setting.sweep:
        raise InputError(name, f"a sweep cannot vary {name}; sweepable: {_sweepable_text()}")
    spec = spec.strip()
    if not spec:
        raise InputError(name, f"no values given; e.g. {name}={setting.encode(setting.default)}")
    range_match = re.fullmatch(r"([^:,|]+):([^:,|]+)(?::(log|linear))?", spec)
    if range_match and setting.kind in ("int", "float"):
        low, high = setting.parse(range_match.group(1)), setting.parse(range_match.group(2))
        if low is None or high is None or not low < high:
            raise InputError(name, f"a range is low:high with low < high, got {spec!r}")
        log = setting.log if range_match.group(3) is None else range_match.group(3) == "log"
        if log and low <= 0:
            raise InputError(name, f"a log range needs low > 0, got {spec!r}; use :linear")
        dimension = Dimension(name, low=low, high=high, log=log, text=f"{name}={spec}")
        checked = (low, high)
    else:
        parts = spec.split("|") if setting.kind == "int_list" else spec.split(",")
        parts = [part.strip() for part in parts]
        if any(part == "" for part in parts):
            raise InputError(name, f"an empty value in {spec!r}; separate values with "
                                   f"{'|' if setting.kind == 'int_list' else ','}")
        if len(parts) > MAX_VALUES:
            raise InputError(name, f"at most {MAX_VALUES} values, got {len(parts)}")
        values = []
        for part in parts:
            value = setting.parse(part)
            if value not in values:
                values.append(value)
        dimension = Dimension(name, values=tuple(values), text=f"{name}={spec}")
        checked = values
    if base is not None:
        for value in checked:
            config = dataclasses.replace(base, **{name: value}).validated()
            size = nominal_size(config)
            if size is not None:  # refused before the sweep starts, not on a worker
                config.check_memory(*size)
    return dimension


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: a base set-up, what varies, and how Optuna chooses and prunes."""

    base: TrainConfig
    space: tuple = ()  # Dimensions
    strategy: str = "grid"
    trials: int | None = None  # grid: the whole grid unless fewer; random/tpe: DEFAULT_TRIALS
    seed: int = 0
    pruner: str = "none"

    @classmethod
    def build(cls, base, vary, strategy="grid", trials=None, seed=0, pruner="none", iterations=None):
        """Checked before anything starts: every problem raises InputError naming the field."""
        if not isinstance(base, TrainConfig):
            raise InputError("base", "a sweep starts from a TrainConfig")
        if iterations is not None:
            base = dataclasses.replace(base, iterations=SETTINGS["iterations"].parse(iterations))
        base = dataclasses.replace(base, eval_every=max(1, base.iterations // EVALUATIONS_PER_TRIAL))
        base = base.validated()
        if strategy not in STRATEGIES:
            raise InputError("strategy", f"{strategy!r} is not one of {', '.join(STRATEGIES)}")
        if pruner not in PRUNERS:
            raise InputError("pruner", f"{pruner!r} is not one of {', '.join(PRUNERS)}")
        if isinstance(vary, str):
            vary = [vary]
        if not vary:
            raise InputError("vary", f"give at least one setting to vary, e.g. learning_rate=0.01,0.1; "
                                     f"sweepable: {_sweepable_text()}")
        space = tuple(parse_dimension(text, base) for text in vary)
        names = [d.name for d in space]
        for name in names:
            if names.count(name) > 1:
                raise InputError(name, "is varied twice; give all its values in one --vary")
        if strategy == "grid":
            ranged = next((d for d in space if d.values is None), None)
            if ranged is not None:
                raise InputError(ranged.name, "a grid needs a list of values (e.g. 0.01,0.1,1), not a "
                                              "range; ranges suit --strategy random or tpe")
        seed, trials = SAMPLER_SEED.parse(seed), TRIALS.parse(trials)
        spec = cls(base, space, strategy, trials, seed, pruner)
        if spec.total() > MAX_TRIALS:
            raise InputError("vary", f"the grid has {spec.grid_size()} set-ups; at most {MAX_TRIALS} "
                                     "(give --trials, or fewer values)")
        return spec

    def grid_size(self):
        size = 1
        for dimension in self.space:
            size *= len(dimension.values) if dimension.values is not None else 1
        return size

    def total(self):
        """How many trials the sweep runs."""
        if self.strategy == "grid":
            return min(self.grid_size(), self.trials or self.grid_size())
        return self.trials or DEFAULT_TRIALS

    def trial_config(self, params):
        """The set-up of one trial: the base with Optuna's chosen values (by setting name)."""
        by_name = {d.name: d for d in self.space}
        values = {name: by_name[name].value(value) for name, value in params.items()}
        return dataclasses.replace(self.base, **values).validated()

    def to_dict(self):
        return {"base": self.base.to_dict(), "vary": [d.text for d in self.space],
                "strategy": self.strategy, "trials": self.trials, "seed": self.seed, "pruner": self.pruner}

    @classmethod
    def from_dict(cls, data):
        return cls.build(TrainConfig.from_dict(data["base"]), data["vary"], data["strategy"],
                         data["trials"], data["seed"], data["pruner"])


# -- the worker side -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialTask:
    """What a worker needs for one trial; the channels are Dask Queue/Variable names."""

    number: int
    config: dict
    progress_channel: str
    stop_channel: str
    report_evaluations: bool = False  # send rows at each test evaluation (for the pruner)


@dataclass
class TrialOutcome:
    number: int
    attempt: str
    status: str  # finished, diverged, stopped
    metrics: dict
    network: object = None
    history: object = None
    divergence: dict | None = None


def _must_stop(stop, number):
    flags = stop.get(timeout=CONNECT_SECONDS)
    return flags["all"] or number in flags["trials"]


def run_trial(task, data=None):
    """Train one trial on a Dask worker; `data` is given only for data the client alone has."""
    from distributed import Queue, Variable, get_worker

    from .trainer import Trainer

    attempt = uuid.uuid4().hex[:12]
    progress, stop = Queue(task.progress_channel), Variable(task.stop_channel)
    config = TrainConfig.from_dict(task.config)
    if _must_stop(stop, task.number):
        return TrialOutcome(task.number, attempt, "stopped", {})
    if data is None:
        try:
            data = config.load_data()
        except InputError as error:  # e.g. a remote worker without a downloaded data set
            raise InputError(error.field, f"on worker {get_worker().address}: {error.message}") from None
    started = time.perf_counter()
    trainer = Trainer.from_config(config, data)
    progress.put(("started", task.number, attempt, get_worker().address))
    rows, status, last_report = [], "finished", time.perf_counter()
    while trainer.iteration < config.iterations:
        records = trainer.step(1)
        for record in records:
            if "diverged" not in record:
                rows.append((record["iteration"], record["epoch"], record["cost"],
                             record.get("test_cost"), record.get("test_accuracy")))
        if trainer.diverged is not None:
            status = "diverged"
            break
        evaluated = task.report_evaluations and bool(records) and records[-1].get("test_cost") is not None
        now = time.perf_counter()
        if evaluated or now - last_report >= REPORT_SECONDS:
            progress.put(("rows", task.number, attempt, rows))
            rows, last_report = [], now
            if _must_stop(stop, task.number):
                status = "stopped"
                break
    metrics = {**trainer.evaluate(), "iterations": trainer.iteration,
               "seconds": time.perf_counter() - started}
    if rows:
        progress.put(("rows", task.number, attempt, rows))
    return TrialOutcome(task.number, attempt, status, metrics, trainer.network, trainer.history,
                        trainer.diverged)


# -- the cluster -----------------------------------------------------------------------------------
def _allow_one_retry(dask_scheduler=None):
    """A task whose worker dies is run again once; a second death fails it (KilledWorker)."""
    dask_scheduler.allowed_failures = 1


def _warm_up():
    from . import data, trainer  # noqa: F401


def check_address(address):
    text = str(address).strip()
    if not re.fullmatch(r"(tcp://|tls://)?[A-Za-z0-9.\-\[\]:]+:\d{1,5}", text):
        raise InputError("scheduler", f"{address!r} is not a scheduler address like tcp://host:8786")
    return text if "://" in text else "tcp://" + text


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class LocalClusterProcess:
    """A LocalCluster in its own Python process (see the module docstring for why)."""

    def __init__(self, workers):
        self.log_path = paths.studio_home() / "sweeps" / f"cluster-{os.getpid()}-{uuid.uuid4().hex[:6]}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 (the child keeps it)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backprop.sweep", "serve", str(int(workers))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=paths.PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                str(paths.PROJECT_ROOT), os.environ.get("PYTHONPATH")]))})
        log.close()
        line = self._first_line()
        self.address = json.loads(line)["address"]

    def _first_line(self):
        result = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(CLUSTER_START_SECONDS)
        if not result or not result[0]:
            self.close()
            tail = self.log_path.read_text(errors="replace")[-1500:]
            raise InputError("workers", f"the local Dask cluster did not start: {tail}")
        return result[0].decode()

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # the serving process closes its cluster and exits
                self.process.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.log_path.unlink(missing_ok=True)


def serve_local_cluster(workers):
    """`python -m backprop.sweep serve N`: print the address, serve until stdin closes."""
    import logging

    import dask
    from distributed import LocalCluster

    dask.config.set({"distributed.scheduler.allowed-failures": 1})
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR, env=WORKER_ENV)
    print(json.dumps({"address": cluster.scheduler_address}), flush=True)
    sys.stdin.buffer.read()
    cluster.close(timeout=10)


def connect(scheduler=None, workers=None):
    """(Client, owned cluster or None): the given scheduler, or a new local cluster."""
    from distributed import Client

    cluster = None
    if scheduler:
        address = check_address(scheduler)
    else:
        count = WORKERS.parse(workers)
        cluster = LocalClusterProcess(default_workers() if count is None else count)
        address = cluster.address
    try:
        client = Client(address, timeout=f"{CONNECT_SECONDS}s", set_as_default=False)
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            cluster.close()
        raise InputError("scheduler", f"no Dask scheduler answered at {address} within "
                                      f"{CONNECT_SECONDS} s: is `dask scheduler` running there and "
                                      f"the port open? ({error})") from None
    try:
        client.run(_warm_up)  # imports on every worker now, not in its first trial
    except Exception as error:  # e.g. a worker without this package
        client.close()
        if cluster is not None:
            cluster.close()
        raise InputError("scheduler", f"a worker at {address} cannot run trials: {_describe(error)}; "
                                      "install Backprop Studio on every worker") from None
    try:
        client.run_on_scheduler(_allow_one_retry)
    except Exception:  # a scheduler that refuses it keeps its own allowed-failures
        pass
    return client, cluster


# -- the client side -------------------------------------------------------------------------------
@dataclass
class TrialView:
    """One trial as the CLI and the app show it."""

    number: int
    params: dict  # setting name -> Python value
    status: str = "queued"
    run_id: int | None = None
    test_cost: float | None = None
    test_accuracy: float | None = None
    train_accuracy: float | None = None
    seconds: float | None = None
    worker: str | None = None
    reason: str | None = None
    curve: list = field(default_factory=list)  # (iteration, cost)
    evaluations: list = field(default_factory=list)  # (iteration, test_cost, test_accuracy)
    ended_at: float | None = None  # seconds since the sweep (re)started


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
        return sum(1 for trial in self.trials if trial.status in ("finished", "pruned", "failed", "diverged"))

    def best(self, n=None):
        ranked = sorted((t for t in self.trials if t.status == "finished" and t.test_cost is not None),
                        key=lambda t: t.test_cost)
        return ranked if n is None else ranked[:n]


def study_path(sweep_id):
    folder = paths.studio_home() / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"sweep-{int(sweep_id)}.journal"


def open_study(sweep_id, spec=None, offset=0):
    """The sweep's Optuna study in its journal file (created when new)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(study_path(sweep_id))))
    if spec is None:
        return optuna.load_study(study_name=f"sweep-{sweep_id}", storage=storage)
    if spec.strategy == "grid":
        sampler = _AskTellGridSampler({d.name: list(d.choices()) for d in spec.space}, seed=spec.seed)
    elif spec.strategy == "random":
        sampler = optuna.samplers.RandomSampler(seed=spec.seed + offset)
    else:
        sampler = optuna.samplers.TPESampler(seed=spec.seed + offset, constant_liar=True,
                                             n_startup_trials=min(10, max(3, spec.total() // 3)))
    evaluations = max(1, spec.base.iterations // spec.base.eval_every)
    if spec.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=spec.base.eval_every)
    elif spec.pruner == "halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.base.eval_every * max(
            1, evaluations // 9), reduction_factor=3)
    else:
        pruner = optuna.pruners.NopPruner()
    return optuna.create_study(study_name=f"sweep-{sweep_id}", storage=storage, sampler=sampler,
                               pruner=pruner, direction="minimize", load_if_exists=True)


def _grid_sampler_class():
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """GridSampler, whose after_trial ends an optimize() loop once the grid is done by calling
        study.stop(); with ask-and-tell there is no such loop (stop() raises) and the client counts
        the trials itself."""

        def after_trial(self, study, trial, state, values):
            pass

    return AskTellGridSampler


def _AskTellGridSampler(*args, **kwargs):  # noqa: N802 (a class, made when optuna is imported)
    return _grid_sampler_class()(*args, **kwargs)


def view_of(spec, frozen):
    """A recorded Optuna trial as a TrialView (None for one that is asked again)."""
    from optuna.trial import TrialState

    if _requeued(frozen):
        return None
    params = {d.name: d.value(frozen.params[d.name]) for d in spec.space if d.name in frozen.params}
    attrs = frozen.user_attrs.get("result", {})
    status = {TrialState.COMPLETE: "finished", TrialState.PRUNED: "pruned",
              TrialState.FAIL: attrs.get("status", "failed"), TrialState.WAITING: "queued",
              TrialState.RUNNING: "queued"}[frozen.state]
    return TrialView(frozen.number, params, status, None, attrs.get("test_cost"), attrs.get("test_accuracy"),
                     attrs.get("train_accuracy"), attrs.get("seconds"), reason=attrs.get("reason"))


def _requeued(frozen):
    return frozen.user_attrs.get("requeued", False)


def create_sweep(spec, store=None, name=None):
    """Record a new sweep (space, strategy, seed) and return its id; nothing runs yet."""
    from .runs import RunStore

    store = store or RunStore()
    return store.create_sweep(spec.to_dict(), name=name)


class Sweep:
    """Runs one recorded sweep to its end (a new one, or a resumed one). `run()` blocks; the app
    calls it from a thread and reads `snapshot()`; `cancel()` from any thread."""

    def __init__(self, sweep_id, store=None, scheduler=None, workers=None):
        from .runs import RunStore

        self.store = store or RunStore()
        self.sweep_id = int(sweep_id)
        record = self.store.get_sweep(self.sweep_id)
        self.spec = SweepSpec.from_dict(record["spec"])
        self.scheduler, self.workers = scheduler, workers
        self.address = None  # the scheduler's, once connected
        self.connect_seconds = None
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._ended = threading.Event()  # a trial's future is done
        self._started = time.monotonic()
        self._status = "starting"
        self._message = None
        self._views = {}
        self._best = []
        self._runs = {}  # number -> _TrialRun of its running attempt
        self._to_tell = collections.deque()  # results whose runs are written (see _finish)
        self._finishing = 0  # trials ended whose results Optuna has not heard yet
        self._writer = _Writer()
        self._asked = {}  # number -> optuna Trial
        self._pruned = set()
        self._reported = {}  # number -> last step reported to Optuna
        self._stopping = set()

    # -- reading (any thread) ----------------------------------------------------------------------
    def snapshot(self):
        with self._lock:
            trials = [dataclasses.replace(view, curve=list(view.curve), evaluations=list(view.evaluations),
                                          params=dict(view.params))
                      for _, view in sorted(self._views.items())]
            return SweepSnapshot(self.sweep_id, self._status, self.spec.total(), trials,
                                 time.monotonic() - self._started, list(self._best), self._message,
                                 self.spec.space)

    def cancel(self):
        """Stop every running trial (each within REPORT_SECONDS and a step) and ask no more."""
        self._cancel.set()

    @property
    def status(self):
        return self._status

    # -- the loop ------------------------------------------------------------------------------
    def run(self, on_change=None):
        """Run the sweep to its end; returns the final snapshot. on_change(snapshot) after events."""
        try:
            self._run(on_change)
        except KeyboardInterrupt:
            self._set_status("cancelled")
            self.store.update_sweep(self.sweep_id, status="cancelled", message="interrupted (Ctrl-C)")
            raise
        except BaseException as error:
            self._set_status("failed", _describe(error))
            self.store.update_sweep(self.sweep_id, status="failed", message=_describe(error))
            raise
        return self.snapshot()

    def _set_status(self, status, message=None):
        with self._lock:
            self._status = status
            if message is not None:
                self._message = message

    def _run(self, on_change):
        from distributed import Queue, Variable

        self.store.update_sweep(self.sweep_id, status="running")
        self.study = self._load_study()
        client, cluster = connect(self.scheduler, self.workers)
        self.address = client.scheduler.address
        self.connect_seconds = time.monotonic() - self._started  # cluster start-up and connection
        token = uuid.uuid4().hex[:8]
        channel = f"backprop-sweep-{self.sweep_id}-{token}"
        self._progress = Queue(channel + "-progress", client=client)
        self._stop = Variable(channel + "-stop", client=client)
        self._stop.set({"all": False, "trials": []})
        self._set_status("running")
        in_flight = {}  # future -> number
        scattered = {}
        capacity, capacity_checked = 1, 0.0
        try:
            while True:
                done = [f for f in in_flight if f.done()]
                self._drain()  # after looking at the futures: a done trial's rows are all in the queue
                for future in done:
                    self._finish(future, in_flight.pop(future))
                self._tell()
                busy = len(in_flight) + self._finishing
                if self._cancel.is_set():
                    self._stop_trials(all_trials=True)
                    if not busy:
                        break
                else:
                    if time.monotonic() - capacity_checked > 1.0:
                        capacity = max(0, sum(client.nthreads().values()))
                        capacity_checked = time.monotonic()
                    # A trial more per worker waits at the scheduler, so a worker that finishes one
                    # starts the next at once (TPE: one in all, so it learns from more results).
                    ahead = 1 if self.spec.strategy == "tpe" else capacity
                    while len(in_flight) < capacity + ahead and self._remaining(busy) > 0:
                        future, number = self._submit(client, scattered, channel)
                        in_flight[future] = number
                        future.add_done_callback(lambda _: self._ended.set())
                        busy += 1
                    if not busy and self._remaining(0) <= 0:
                        break
                    if capacity == 0 and not in_flight:
                        self._set_status("running", "waiting for workers to join the scheduler")
                # Wake when a trial ends (its future's callback), else drain progress every 0.1 s.
                self._ended.wait(0.1)
                self._ended.clear()
                if on_change:
                    on_change(self.snapshot())
        finally:
            for run in self._runs.values():
                self._writer.put(lambda run=run: run.recorder and run.recorder.close(status="stopped"))
            self._writer.close()
            self._tell()  # what ended before an interruption is kept
            client.close()
            if cluster is not None:
                cluster.close()
        status = "cancelled" if self._cancel.is_set() else "finished"
        self._set_status(status)
        self.store.update_sweep(self.sweep_id, status=status)
        if on_change:
            on_change(self.snapshot())

    def _load_study(self):
        from optuna.trial import TrialState

        study = open_study(self.sweep_id, self.spec)
        trials = study.get_trials(deepcopy=False)
        if trials:  # a resumed sweep: a new sampler seed past the draws already made
            study = open_study(self.sweep_id, self.spec, offset=len(trials))
        names = [d.name for d in self.spec.space]
        for frozen in trials:
            if frozen.state == TrialState.RUNNING:  # its client ended while it ran: ask it again
                study._storage.set_trial_user_attr(frozen._trial_id, "requeued", True)
                study.tell(frozen.number, state=TrialState.FAIL)
                if self.spec.strategy != "grid" and set(frozen.params) == set(names):
                    study.enqueue_trial(frozen.params, skip_if_exists=False)
        if self.spec.strategy == "grid" and trials:
            # Every grid point not yet tried (or waiting) is queued: a trial killed before Optuna
            # recorded its values is found this way too.
            covered = {tuple(t.params.get(n) for n in names) for t in study.get_trials(deepcopy=False)
                       if t.state != TrialState.WAITING and not _requeued(t)}
            covered |= {tuple(t.system_attrs.get("fixed_params", {}).get(n) for n in names)
                        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
            for point in itertools.product(*(d.choices() for d in self.spec.space)):
                if point not in covered:
                    study.enqueue_trial(dict(zip(names, point, strict=True)))
        for frozen in study.get_trials(deepcopy=False):
            self._views[frozen.number] = view_of(self.spec, frozen)
        self._views = {n: v for n, v in self._views.items() if v is not None}
        return study

    def _remaining(self, in_flight):
        done = sum(1 for view in self._views.values() if view.status not in ("queued", "running"))
        return self.spec.total() - done - in_flight

    def _submit(self, client, scattered, channel):
        trial = self.study.ask({d.name: d.distribution() for d in self.spec.space})
        params = {d.name: d.value(trial.params[d.name]) for d in self.spec.space}
        config = self.spec.trial_config(trial.params)
        data = None
        if config.dataset in ("idx", "npz"):  # only the client has these files: send them once
            key = tuple(repr(getattr(config, name)) for name in DATA)
            if key not in scattered:
                scattered[key] = client.scatter(config.load_data())
            data = scattered[key]
        task = TrialTask(trial.number, config.to_dict(), channel + "-progress", channel + "-stop",
                         report_evaluations=self.spec.pruner != "none")
        future = client.submit(run_trial, task, data, key=f"{channel}-trial-{trial.number}", pure=False)
        with self._lock:
            self._asked[trial.number] = trial
            self._views[trial.number] = TrialView(trial.number, params)
        return future, trial.number

    def _drain(self):
        for message in self._progress.get(batch=True):
            kind, number, attempt = message[:3]
            if kind == "started":
                self._on_started(number, attempt, message[3])
            elif kind == "rows":
                self._on_rows(number, attempt, message[3])

    def _on_started(self, number, attempt, worker):
        from .runs import RunRecorder

        previous = self._runs.get(number)
        if previous is not None:  # its worker died: the scheduler runs it again
            self._writer.put(lambda: previous.recorder and previous.recorder.close(
                metrics={"error": "its worker died; the trial was run again"}, status="failed"))
        config = self.spec.trial_config(self._asked[number].params)
        run = self._runs[number] = _TrialRun(attempt)

        def create():
            run.run_id = self.store.create(config.to_dict(), source="sweep", sweep_id=self.sweep_id,
                                           trial=number, name=f"sweep {self.sweep_id} trial {number}")
            run.recorder = RunRecorder(self.store, run.run_id)
            with self._lock:
                if self._runs.get(number) is run or self._views[number].run_id is None:
                    self._views[number].run_id = run.run_id
        self._writer.put(create)
        with self._lock:
            view = self._views[number]
            view.status, view.worker = "running", worker
            view.curve, view.evaluations = [], []

    def _on_rows(self, number, attempt, rows):
        run = self._runs.get(number)
        if run is None or run.attempt != attempt:
            return  # from an attempt whose worker died
        records = [{"iteration": r[0], "epoch": r[1], "cost": r[2], "test_cost": r[3], "test_accuracy": r[4]}
                   for r in rows]
        self._writer.put(lambda: run.recorder.add(records))
        trial = self._asked[number]
        evaluations = [(r[0] + 1, r[3], r[4]) for r in rows if r[3] is not None]
        with self._lock:
            view = self._views[number]
            view.curve.extend((r[0], r[2]) for r in rows)
            if len(view.curve) > 4000:
                view.curve = view.curve[::2]
            view.evaluations.extend(evaluations)
        for step, test_cost, _ in evaluations if self.spec.pruner != "none" else ():
            if step <= self._reported.get(number, 0):
                continue  # a run again after its worker died reports the same steps
            self._reported[number] = step
            trial.report(test_cost, step)
            if number not in self._pruned and trial.should_prune():
                self._pruned.add(number)
                self._stop_trials(numbers=[number])

    def _stop_trials(self, numbers=(), all_trials=False):
        wanted = set(numbers) | self._stopping
        if all_trials and "all" in self._stopping:
            return
        if all_trials:
            self._stopping.add("all")
        self._stopping |= wanted
        self._stop.set({"all": "all" in self._stopping,
                        "trials": sorted(n for n in self._stopping if n != "all")})

    def _finish(self, future, number):
        from optuna.trial import TrialState

        trial = self._asked.pop(number)
        run = self._runs.pop(number, None)
        reason = None
        try:
            outcome = future.result()
        except Exception as error:
            outcome, reason = None, _describe(error)
        attrs = {}
        if outcome is None:
            state, status, run_status = TrialState.FAIL, "failed", "failed"
        elif outcome.status == "finished":
            state, status, run_status = TrialState.COMPLETE, "finished", "finished"
        elif outcome.status == "diverged":
            state, status, run_status = TrialState.FAIL, "diverged", "diverged"
            reason = outcome.divergence["reason"] if outcome.divergence else "diverged"
        elif number in self._pruned:
            state, status, run_status = TrialState.PRUNED, "pruned", "pruned"
        else:  # cancelled: asked again when the sweep is resumed
            state, status, run_status = TrialState.FAIL, "cancelled", "stopped"
        if outcome is not None:
            metrics = outcome.metrics
            # NaN accuracy: a regression task has none.
            attrs = {key: _finite(metrics.get(key))
                     for key in ("test_cost", "test_accuracy", "train_accuracy", "seconds")}
            reason = None if status in ("finished", "pruned", "cancelled") else reason
        attrs.update(status=status, reason=reason)
        trial.set_user_attr("result", attrs)  # one journal write per trial
        if status == "cancelled":
            trial.set_user_attr("requeued", True)
        value = None
        if status == "finished":
            value = outcome.metrics.get("test_cost", outcome.metrics.get("train_cost"))
        config = self.spec.trial_config(trial.params)
        metrics = dict(outcome.metrics) if outcome is not None else {"error": reason}

        def close():
            # The run is complete in the store (with its checkpoint) before Optuna hears of it,
            # so a client killed in between leaves a trial that is run again, never a finished
            # trial without its run.
            try:
                if run is not None:
                    checkpoint = None
                    if status == "finished" and outcome.network is not None:
                        checkpoint = self._save(number, outcome, config)
                    run.recorder.close(metrics, status=run_status, checkpoint_path=checkpoint)
            finally:
                self._to_tell.append((number, trial, status, state, value, reason, attrs))
                self._ended.set()
        self._finishing += 1
        self._writer.put(close)

    def _tell(self):
        """Tell Optuna the trials whose runs are written (see _finish)."""
        while self._to_tell:
            number, trial, status, state, value, reason, attrs = self._to_tell.popleft()
            self._finishing -= 1
            if status == "finished":
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=state)
            if status == "cancelled":
                self.study.enqueue_trial(trial.params, skip_if_exists=False)
            self._record_result(number, status, reason, attrs)

    def _record_result(self, number, status, reason, attrs):
        with self._lock:
            view = self._views[number]
            view.status, view.reason = status, reason
            view.test_cost, view.test_accuracy = attrs.get("test_cost"), attrs.get("test_accuracy")
            view.train_accuracy, view.seconds = attrs.get("train_accuracy"), attrs.get("seconds")
            view.ended_at = time.monotonic() - self._started
            if status == "finished" and view.test_cost is not None and (
                    not self._best or view.test_cost < self._best[-1][1]):
                self._best.append((view.ended_at, view.test_cost, view.test_accuracy))

    def _save(self, number, outcome, config):
        from .checkpoint import save_checkpoint

        folder = paths.studio_home() / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return save_checkpoint(folder / f"sweep-{self.sweep_id}-trial-{number}.npz", outcome.network,
                                   config, outcome.history)
        except OSError:
            return None



@dataclass
class _TrialRun:
    """The run store's record of one attempt at a trial (filled in by the writer thread)."""

    attempt: str
    run_id: int | None = None
    recorder: object = None


class _Writer:
    """The run store's and the checkpoints' writes of a sweep, in order, on their own thread: SQLite
    transactions and file syncs then cost the client loop (tell, ask, submit) nothing."""

    def __init__(self):
        import queue

        self._jobs = queue.Queue()
        self.error = None
        self._thread = threading.Thread(target=self._work, name="backprop-sweep-writer", daemon=True)
        self._thread.start()

    def put(self, job):
        self._jobs.put(job)

    def _work(self):
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception as error:  # a full disk must not stop the sweep; the runs say what is kept
                self.error = error

    def close(self):
        self._jobs.put(None)
        self._thread.join()


def recorded_snapshot(sweep_id, store=None, curves=True):
    """A sweep as recorded (study and run store), for one that no client in this process runs;
    reads only. Trials left running by a client that ended show as queued (resume runs them)."""
    from optuna.trial import TrialState

    from .runs import RunStore

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
    runs = {run["trial"]: run["id"] for run in store.sweep_runs(sweep_id)}  # the last run of each trial
    for _, view in views:
        view.run_id = runs.get(view.number)
    if curves:
        for _, view in views:
            if view.run_id is not None:
                try:
                    rows = store.history(view.run_id)
                except InputError:  # the run was deleted on the Compare page
                    continue
                view.curve = [(row["iteration"], row["cost"]) for row in rows]
                view.evaluations = [(row["iteration"] + 1, row["test_cost"], row["test_accuracy"])
                                    for row in rows if row["test_cost"] is not None]
    elapsed = max((v.ended_at or 0.0 for _, v in views), default=0.0)
    return SweepSnapshot(int(sweep_id), record["status"], spec.total(),
                         [view for _, view in sorted(views, key=lambda pair: pair[1].number)], elapsed, best,
                         record["message"], spec.space)


def _finite(value):
    return None if value is None or not math.isfinite(value) else float(value)


def _describe(error):
    if isinstance(error, InputError):
        return f"{error.field}: {error.message}"
    name = type(error).__name__
    if name == "KilledWorker":
        return ("its worker process died twice while running it (killed, or out of memory); "
                f"Dask says: {error}")
    return f"{name}: {error}"


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


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    serve_local_cluster(int(sys.argv[2]))
