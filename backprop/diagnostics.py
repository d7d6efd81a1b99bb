"""Why training fails, measured: a watch on the cost, the sharpness and the gradient noise scale
measured off the training thread, and one explanation of a divergence.

- `CostWatch` sees a cost that rises over several steps (the median of the last few steps well
  above the lowest one seen, or above where the run started), long before anything is NaN/Inf.
- `explain(event, setup, evidence)` is the one explanation of a divergence, a NaN/Inf (`Divergence`)
  or a rising cost (`Rise`): what happened, the causes it measured (λ_max above the optimizer's
  stability limit, mostly dead or saturated layers, exploding gradient norms) and what to try, read
  from the set-up in use (never He initialisation when He is in use). `backprop.run.divergence_text`,
  the CLI and the pages all say what it says.
- `RunDiagnostics` is a run's diagnostics thread. The training thread only compares the step's
  number with the next one due (`note`); the diagnostics thread then copies what it needs under the
  trainer's reading lock (parameter arrays are replaced on each step, never changed in place, so
  the references are a snapshot) and measures after releasing it: the cost watch every
  WATCH_EVERY steps, λ_max against the stability limit every `sharpness_every` steps (Lanczos
  warm-started from the last top eigenvector, as `stability.SharpnessTracker` does), B_simple every
  `noise_every` steps, and, when the watch sees a rise or the trainer a NaN, the measurements that
  name the causes. A thread that has nothing to do for IDLE_SECONDS ends; the next step due starts
  another.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .activations import DEAD_KIND, SATURATING
from .curvature import SAMPLES
from .errors import InputError
from .health import READING_THRESHOLD
from .noise_scale import SAMPLES as NOISE_SAMPLES
from .noise_scale import gradient_noise_scale
from .optimizers import make_optimizer
from .stability import SharpnessPoint, adam_preconditioner, measure_stability

WATCH_EVERY = 5  # steps between two looks at the cost
MIN_CYCLE_SECONDS = 0.05  # at most 20 looks a second, however fast the steps are
DUTY = 0.1  # tracking takes at most this share of the time: after measuring for m seconds the next
# tracked measurement waits 9m, so a fast run's cadence thins out instead of taking a core from training
# (the cost watch goes on meanwhile, and a divergence is measured at once)
IDLE_SECONDS = 5.0  # the diagnostics thread ends after this long without work
SHARPNESS_EVERY = 20  # the Train page's default cadence (benchmarks/bench_diagnostics.py: its cost)
NOISE_EVERY = 100
TRACK_TOL = 1e-3  # Lanczos tolerance of a tracked λ_max (SharpnessTracker's)
DIAGNOSIS_TOL = 1e-2  # of the λ_max that names a cause: two figures are enough for "lr < 0.16"
EXPLODING = 10.0  # a layer's ‖dW‖ this many times its value before the rise: exploding
UNHEALTHY = READING_THRESHOLD  # a layer more than half dead or saturated
MAX_KEPT = 2000  # measurements kept per kind; past it every other one goes (a long run stays bounded)


# -- the cost watch --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rise:
    """What the watch saw: the median cost of the last `window` steps (up to `iteration`) well above
    `reference`, the lowest cost before it (at `since`)."""

    iteration: int
    cost: float
    window: int
    since: int
    reference: float


@dataclass(frozen=True)
class WatchRule:
    window: int  # steps whose median is compared
    factor: float  # the median must exceed the reference by this factor ...
    floor: float  # ... and by this share of the starting cost (tiny costs wander)


FULL_BATCH = WatchRule(window=5, factor=1.2, floor=0.1)  # a deterministic cost: a few steps suffice
WATCHED_SAMPLES = 1000  # a mini-batch run's window holds about this many samples' costs (10 to 100 steps)


def watch_rule(batch_size):
    """The watch's rule for a batch size (None: the full batch). Batch costs are noisy: the window
    spans about WATCHED_SAMPLES samples and the margin is wider. Tuned on TensorFlow Playground's
    set-ups (batches of 10, which rise for a few hundred steps at lr 0.3 and stay quiet at 0.03), the
    tutorial's at lr 0.1 to 10 and the edge-of-stability demo (tests/test_diagnostics.py)."""
    if batch_size is None:
        return FULL_BATCH
    return WatchRule(window=min(100, max(10, math.ceil(WATCHED_SAMPLES / batch_size))), factor=1.5, floor=0.1)


class CostWatch:
    """Feed it the steps' costs in order; `feed` returns a Rise the first time the cost has risen
    over a window of steps (the median, so one spike is not a rise), and `recovered` tells when a
    risen cost came back down. `improved` says whether the last feed found a new lowest median (the
    parameters then are the ones "before the rise"). `reset()` starts over (a setting changed: the
    cost before it is no reference for the cost after it)."""

    def __init__(self, batch_size=None, rule=None):
        self.rule = rule or watch_rule(batch_size)
        self.reset()

    def reset(self):
        self._recent = deque(maxlen=self.rule.window)
        self.start = None  # (iteration, cost) of the first finite cost
        self.best = None  # (iteration, median) of the lowest window median
        self.last_iteration = -1
        self.rise = None  # the Rise seen, until the cost comes back down
        self.recovered = None  # the iteration where a rise ended
        self.improved = False

    @property
    def reference(self):
        """(iteration, cost): the lowest of the starting cost and the window medians so far."""
        if self.start is None:
            return None
        if self.best is not None and self.best[1] < self.start[1]:
            return self.best
        return self.start

    def feed(self, iterations, costs):
        """Take steps (iteration numbers and costs, in order; ones seen already are skipped).
        Returns a Rise when one begins in them, else None."""
        found = None
        self.improved = False
        window = self.rule.window
        for iteration, cost in zip(np.asarray(iterations).tolist(), np.asarray(costs, dtype=float).tolist(),
                                   strict=True):
            if iteration <= self.last_iteration:
                continue
            self.last_iteration = iteration
            if not math.isfinite(cost):
                continue  # a NaN/Inf is the trainer's to report
            if self.start is None:
                self.start = (iteration, cost)
            self._recent.append((iteration, cost))
            if len(self._recent) < window:
                continue
            median = float(np.median([c for _, c in self._recent]))
            first = self._recent[0][0]
            reference = self.reference
            rising = (first > reference[0] and median > reference[1] * self.rule.factor
                      and median - reference[1] > self.rule.floor * self.start[1])
            if self.rise is None:
                if rising:
                    self.rise = found = Rise(iteration, median, window, reference[0], reference[1])
                    self.recovered = None
                elif self.best is None or median < self.best[1]:
                    self.best = (iteration, median)
                    self.improved = True
            elif median <= self.rise.reference * (1 + (self.rule.factor - 1) / 2):
                self.recovered = iteration  # back down near where it rose from
                self.rise = None
                self.best = (iteration, median)
                self.improved = True
        return found


# -- the one explanation --------------------------------------------------------------------------
@dataclass(frozen=True)
class Divergence:
    """A step made the cost or a gradient NaN/Inf (the trainer's record)."""

    iteration: int
    layer: int
    n_layers: int | None = None


@dataclass(frozen=True)
class Setup:
    """What the advice reads: the set-up in use now (a learning rate changed while training included)."""

    activation: str
    init: str
    optimizer: str
    optimizer_values: dict
    batch_size: int | None = None
    n_layers: int | None = None

    @property
    def learning_rate(self):
        return self.optimizer_values["learning_rate"]

    @classmethod
    def of_config(cls, config, n_layers=None):
        return cls(config.activation, config.init, config.optimizer, dict(config.optimizer_values()),
                   config.batch_size, n_layers)

    @classmethod
    def of_trainer(cls, trainer):
        """Read while holding the trainer's lock."""
        network = trainer.network
        return cls(network.activation, network.init, trainer.optimizer.name, trainer.optimizer.values(),
                   trainer.batch_size, network.n_layers)


@dataclass(frozen=True)
class Evidence:
    """What was measured around the event. Health rows are (hidden layers, 2): dead and saturated
    shares (backprop.health); gradient rows are ‖dW‖ per layer."""

    sharpness: tuple = ()  # SharpnessPoints, before the rise and now
    since: int | None = None  # the iteration "before" refers to
    health_before: np.ndarray | None = None
    health_now: np.ndarray | None = None
    grad_before: np.ndarray | None = None
    grad_peak: np.ndarray | None = None
    grad_peak_at: tuple = ()  # the iteration of each layer's peak


@dataclass(frozen=True)
class Cause:
    kind: str  # "sharpness", "dead", "saturated", "exploding"
    text: str
    layer: int | None = None  # 1-based, where it is one layer's


@dataclass(frozen=True)
class Diagnosis:
    """One explanation: `kind` "nan" (a NaN/Inf stopped training) or "rising" (the cost rose)."""

    kind: str
    iteration: int
    headline: str
    causes: tuple = ()
    advice: tuple = ()
    sharpness: tuple = field(default=(), compare=False)  # the SharpnessPoints it measured
    recovered: int | None = None  # a rising cost that came back down, at this iteration

    @property
    def text(self):
        parts = [self.headline]
        if self.causes:
            parts.append("Measured: " + "; ".join(cause.text for cause in self.causes) + ".")
        if self.advice:
            parts.append("What to try: " + ", or ".join(self.advice) + ".")
        return " ".join(parts)

    def to_dict(self):
        return {"kind": self.kind, "iteration": self.iteration, "text": self.text,
                "causes": [{"kind": c.kind, "text": c.text, "layer": c.layer} for c in self.causes],
                "advice": list(self.advice), "recovered": self.recovered,
                "sharpness": [_finite_dict(point.to_dict()) for point in self.sharpness]}


def _num(value):
    """52.1, 0.200, 1,234: three significant figures, or whole numbers from 1000."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:#.3g}".rstrip(".")


def _finite_dict(row):
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _headline(event):
    if isinstance(event, Divergence):
        of = f" of {event.n_layers}" if event.n_layers else ""
        return (f"Training diverged at iteration {event.iteration}: the cost or a gradient became NaN/Inf, "
                f"first in layer {event.layer}{of}. The parameters from before that step are kept.")
    return (f"The cost is rising: {_num(event.cost)} (the median of the last {event.window} steps, to "
            f"iteration {event.iteration}), up from {_num(event.reference)} at iteration {event.since}. "
            "Training is diverging, before any NaN.")


def _sharpness_cause(points):
    """The point furthest above its limit, as a cause (None when every one is within it)."""
    above = [p for p in points if p.stability.value > p.stability.limit]
    if not above:
        return None, None
    point = max(above, key=lambda p: p.stability.ratio)
    s = point.stability
    text = (f"{s.measure} {_num(s.value)} at iteration {point.iteration} > {s.formula} = {_num(s.limit)}: "
            f"the stability limit for this curvature is lr < {s.stable_learning_rate:.2g}")
    return Cause("sharpness", text), s.stable_learning_rate


def _health_causes(before, now, since):
    """Mostly dead or saturated layers now; which of them were so already `before` (at `since`)."""
    causes, already = [], []
    if now is None:
        return causes, already
    now = np.asarray(now, dtype=float)
    for layer in range(now.shape[0]):
        for column, kind in ((0, "dead"), (1, "saturated")):
            share = now[layer, column]
            if not share > UNHEALTHY:
                continue
            was = np.nan if before is None else float(np.asarray(before)[layer, column])
            what = ("zero for every sample: they no longer learn" if kind == "dead"
                    else "outputs within 1% of their limits: gradients through them vanish")
            text = f"layer {layer + 1}: {share:.0%} of units {kind} ({what})"
            if math.isfinite(was):
                text += f", {'already' if was > UNHEALTHY else 'up from'} {was:.0%} at iteration {since}"
            causes.append(Cause(kind, text, layer + 1))
            if was > UNHEALTHY:
                already.append(kind)
    return causes, already


def _gradient_causes(before, peak, peak_at):
    causes = []
    if before is None or peak is None:
        return causes
    for layer, (was, top) in enumerate(zip(np.asarray(before, float), np.asarray(peak, float), strict=True)):
        if was > 0 and (top >= EXPLODING * was or (math.isinf(top) and math.isfinite(was))):
            times = "" if math.isinf(top) else f" ({top / was:.0f}×)"
            at = f" by iteration {peak_at[layer]}" if layer < len(peak_at) else ""
            text = f"‖dW{layer + 1}‖ exploded from {_num(was)} to {_num(top)}{times}{at}"
            causes.append(Cause("exploding", text, layer + 1))
    return causes


def advice_for(setup, *, stable_learning_rate=None, dead=False, saturated=False, from_start=False):
    """What to try, read from the set-up in use: each suggestion only where it changes something.
    `dead`/`saturated`: mostly dead or saturated layers were measured; `from_start`: they were so
    before the rise too (their initialisation is to blame, not the steps)."""
    lr = setup.learning_rate
    if stable_learning_rate is not None and math.isfinite(stable_learning_rate):
        tries = [f"a smaller learning rate: below {stable_learning_rate:.2g} for this curvature (now {lr:g})"]
    else:
        tries = [f"a smaller learning rate (now {lr:g}; e.g. {lr / 10:g})"]
    momentum = setup.optimizer_values.get("momentum")
    if setup.optimizer == "momentum" and stable_learning_rate is not None and momentum:
        tries.append(f"less momentum (now {momentum:g}; the limit is (2+2β)/η)")
    if setup.activation in DEAD_KIND:
        if setup.init != "he" and (dead and from_start or not (dead or saturated)):
            tries.append("He initialisation (init he)")
        if dead and setup.activation == "relu":
            tries.append("leaky ReLU (activation leaky_relu), whose units keep a small gradient")
    if saturated and setup.activation in SATURATING and from_start:
        if setup.init != "xavier":
            tries.append("Xavier initialisation (init xavier)")
        tries.append("ReLU with He initialisation (activation relu, init he)")
    if setup.optimizer == "sgd":
        tries.append("the adam optimizer with learning rate 0.001")
    return tuple(tries)


def health_reading(shares, setup, first=None, first_iteration=0):
    """One line for the mostly dead or saturated hidden layers (`shares`: (hidden layers, 2), e.g. the
    last row of History.unit_health()), with what to try read from `setup` (never He initialisation
    when He is in use), or None when every layer is healthy. `first` is the same row at
    `first_iteration`: whether they were so from the start (the initialisation's doing) or became so."""
    causes, already = _health_causes(first, shares, first_iteration)
    if not causes:
        return None
    kinds = {cause.kind for cause in causes}
    advice = advice_for(setup, dead="dead" in kinds, saturated="saturated" in kinds, from_start=bool(already))
    return "; ".join(cause.text for cause in causes) + ". Try " + ", or ".join(advice) + "."


def explain(event, setup, evidence=None):
    """The Diagnosis of a Divergence (NaN/Inf) or a Rise, with the causes `evidence` shows and advice
    read from `setup`. Without evidence: what happened and what the set-up suggests."""
    evidence = evidence or Evidence()
    sharpness, stable_lr = _sharpness_cause(evidence.sharpness)
    health, already = _health_causes(evidence.health_before, evidence.health_now, evidence.since)
    causes = ([sharpness] if sharpness else []) + health + \
        _gradient_causes(evidence.grad_before, evidence.grad_peak, evidence.grad_peak_at)
    kinds = {cause.kind for cause in health}
    advice = advice_for(setup, stable_learning_rate=stable_lr, dead="dead" in kinds,
                        saturated="saturated" in kinds, from_start=bool(already))
    kind = "nan" if isinstance(event, Divergence) else "rising"
    return Diagnosis(kind, event.iteration, _headline(event), tuple(causes), advice,
                     tuple(evidence.sharpness))


# -- measuring off the training thread ------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """What a measurement needs from a trainer at one moment (copied under its lock)."""

    iteration: int
    params: tuple  # the trainer's arrays: replaced on each step, never changed in place
    optimizer: str
    optimizer_values: dict
    learning_rate: float  # with the schedule's factor
    penalties: dict
    preconditioner: list | None  # Adam's denominators (None before its first step, or not Adam)
    batch_size: int | None

    @classmethod
    def of(cls, trainer):
        """Read while holding the trainer's lock."""
        optimizer = trainer.optimizer
        preconditioner = None
        if optimizer.name == "adam" and optimizer.t > 0:
            preconditioner = adam_preconditioner(optimizer)
        return cls(trainer.iteration, tuple(trainer.network.params), optimizer.name, optimizer.values(),
                   optimizer.learning_rate * trainer.lr_factor(), trainer.penalties(), preconditioner,
                   trainer.batch_size)

    @property
    def measurable(self):
        return self.optimizer != "adam" or self.preconditioner is not None


def measure_sharpness(trainer, snapshot, v0=None, tol=TRACK_TOL, max_samples=SAMPLES):
    """A SharpnessPoint for a snapshot, measured in the caller's thread (no lock held), or None when
    it cannot be measured (Adam before its first step, parameters that overflow)."""
    if not snapshot.measurable:
        return None
    judged = make_optimizer(snapshot.optimizer, **snapshot.optimizer_values)
    try:
        with np.errstate(all="ignore"):
            stability = measure_stability(
                trainer.network, trainer.x_train, trainer.y_train, judged, **snapshot.penalties,
                learning_rate=snapshot.learning_rate, max_samples=max_samples, tol=tol, v0=v0,
                params=list(snapshot.params), preconditioner=snapshot.preconditioner)
    except InputError:
        return None
    if not math.isfinite(stability.value):
        return None
    return SharpnessPoint(snapshot.iteration, stability)


@dataclass(frozen=True)
class NoisePoint:
    iteration: int
    noise: object  # backprop.noise_scale.NoiseScale

    def to_dict(self):
        return {"iteration": self.iteration, **_finite_dict(self.noise.to_dict())}


def measure_noise(trainer, snapshot, max_samples=NOISE_SAMPLES):
    """B_simple for a snapshot, measured in the caller's thread, or None when not finite."""
    network = copy.copy(trainer.network)  # the snapshot's parameters, the trainer's network untouched
    network.params = list(snapshot.params)
    network.activation_observer = None
    with np.errstate(all="ignore"):
        try:
            noise = gradient_noise_scale(network, trainer.x_train, trainer.y_train, **snapshot.penalties,
                                         batch_size=snapshot.batch_size, max_samples=max_samples)
        except InputError:
            return None
    if not math.isfinite(noise.trace_sigma):
        return None
    return NoisePoint(snapshot.iteration, noise)


@dataclass(frozen=True)
class DiagnosticsView:
    """What the diagnostics hold at one moment (for RunView, the CLI's --json and the run store)."""

    sharpness: tuple = ()  # SharpnessPoints, every `sharpness_every` steps
    noise: tuple = ()  # NoisePoints
    diagnosis: Diagnosis | None = None
    sharpness_every: int | None = None
    noise_every: int | None = None
    error: str | None = None  # the last measurement that failed, in words

    def summary(self):
        """What a run's record keeps: the explanation, the last λ_max against its limit, the last B_simple."""
        out = {}
        if self.diagnosis is not None:
            out["diagnosis"] = {"kind": self.diagnosis.kind, "iteration": self.diagnosis.iteration,
                                "text": self.diagnosis.text, "recovered": self.diagnosis.recovered}
        if self.sharpness:
            point = self.sharpness[-1].to_dict()
            out["sharpness"] = _finite_dict({key: point[key] for key in (
                "iteration", "measure", "value", "limit", "formula", "ratio", "verdict")})
            out["sharpness"]["measurements"] = len(self.sharpness)
        if self.noise:
            point = self.noise[-1]
            out["noise_scale"] = _finite_dict({"iteration": point.iteration, "b_simple": point.noise.b_simple,
                                               "batch_size": point.noise.batch_size})
        return out


class RunDiagnostics:
    """A run's diagnostics thread (see the module docstring). Off until `configure` turns something
    on; `note` is all the training thread calls."""

    def __init__(self, trainer, name="backprop-diagnostics", on_diagnosis=None):
        self.trainer = trainer
        self.name = name
        self.on_diagnosis = on_diagnosis  # on_diagnosis(Diagnosis), from the diagnostics thread
        self.watch = False
        self.sharpness_every = None
        self.noise_every = None
        self.seconds = 0.0  # spent measuring
        self.sharpness_samples, self.noise_samples = SAMPLES, NOISE_SAMPLES  # each measurement's fixed sample
        self._watch = CostWatch(trainer.batch_size)
        self._marker = None  # the last setting change seen: (iteration, setting)
        self._start = None  # Snapshot where training began
        self._best = None  # Snapshot near the lowest cost seen
        self._points, self._noise = [], []
        self._vector = None  # the last top eigenvector: the next Lanczos starts from it
        self._diagnosis = None
        self._error = None
        self._next = math.inf  # the training thread wakes the diagnostics thread at this iteration
        self._event = threading.Event()
        self._urgent = threading.Event()  # a drain or a new configuration: no waiting
        self._quiet_until = 0.0  # no tracked measurement before this time (DUTY)
        self._thread = None
        self._thread_lock = threading.Lock()
        self._state = threading.Lock()
        self._served = threading.Condition()
        self._requests = self._done = 0

    # -- the training side -------------------------------------------------------------------
    @property
    def active(self):
        return bool(self.watch or self.sharpness_every or self.noise_every)

    def note(self, records):
        """After a step (any thread that trains): a counter check, and a wake-up when something is due."""
        if records and (records[-1]["iteration"] >= self._next or "diverged" in records[-1]):
            if self.active:
                self._wake()

    def begin(self):
        """Training (re)starts: keep the parameters it starts from (the cost watch's first reference)."""
        with self.trainer.reading():
            snapshot = Snapshot.of(self.trainer)
        with self._state:
            if self._start is None:
                self._start = snapshot
            if self._best is None:
                self._best = snapshot

    def configure(self, watch=None, sharpness_every=None, noise_every=None):
        """Turn the cost watch on or off, and set the cadences (None: off). A change takes effect now."""
        watch = self.watch if watch is None else bool(watch)
        for name, value in (("sharpness_every", sharpness_every), ("noise_every", noise_every)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 1):
                raise InputError(name.replace("_every", ""), f"must be a whole number of steps from 1, "
                                                             f"got {value!r}")
        wanted = (watch, sharpness_every, noise_every)
        changed = wanted != (self.watch, self.sharpness_every, self.noise_every)
        self.watch, self.sharpness_every, self.noise_every = watch, sharpness_every, noise_every
        if changed and self.active:
            self._quiet_until = 0.0
            self._urgent.set()
            self._wake()
        elif not self.active:
            self._next = math.inf
        return changed

    def drain(self, timeout=120.0):
        """Wait until the diagnostics thread has looked at the run as it is now (the CLI, at the end,
        and before explaining a NaN). Returns whether it did in time."""
        if not self.active:
            return True
        with self._served:
            self._requests += 1
            wanted = self._requests
        self._quiet_until = 0.0  # what is due now is measured now
        self._urgent.set()
        self._wake()
        with self._served:
            return self._served.wait_for(lambda: self._done >= wanted, timeout)

    # -- reading -----------------------------------------------------------------------------
    def view(self):
        with self._state:
            return DiagnosticsView(tuple(self._points), tuple(self._noise), self._diagnosis,
                                   self.sharpness_every, self.noise_every, self._error)

    @property
    def diagnosis(self):
        return self._diagnosis

    def explain_divergence(self, diverged):
        """The NaN/Inf explanation: the diagnostics thread's (measured) when it has one, else one read
        from the history now."""
        if self.active and (self._diagnosis is None or self._diagnosis.kind != "nan"):
            self.drain(timeout=20.0)
        diagnosis = self._diagnosis
        if diagnosis is not None and diagnosis.kind == "nan":
            return diagnosis
        with self.trainer.reading():
            setup = Setup.of_trainer(self.trainer)
        event = Divergence(diverged["iteration"], diverged["layer"], setup.n_layers)
        since = self._reference_iteration()
        evidence = self._history_evidence(since, tuple(p for p in self._points if p.iteration >= since))
        return explain(event, setup, evidence)

    # -- the diagnostics thread --------------------------------------------------------------
    def _wake(self):
        self._next = math.inf  # until the thread has looked
        self._event.set()
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def _loop(self):
        while True:
            if not self._event.wait(IDLE_SECONDS):
                with self._thread_lock:
                    if not self._event.is_set():
                        self._thread = None
                        return
                continue
            self._event.clear()
            self._urgent.clear()
            with self._served:
                serving = self._requests
            started = time.perf_counter()
            try:
                self._cycle()
            except Exception as error:  # never die silently: the page and --json show it
                with self._state:
                    self._error = f"{type(error).__name__}: {error}"
            finally:
                with self._served:
                    self._done = max(self._done, serving)
                    self._served.notify_all()
            rest = MIN_CYCLE_SECONDS - (time.perf_counter() - started)
            if rest > 0:
                self._urgent.wait(rest)

    def _reference_iteration(self):
        reference = self._watch.reference
        if reference is not None:
            return reference[0]
        return self._start.iteration if self._start is not None else 0

    def _cycle(self):
        trainer = self.trainer
        with trainer.reading():
            history = trainer.history
            diverged = trainer.diverged
            marker = history.markers[-1] if history.markers else None
            iterations = costs = None
            if self.watch:
                iterations, costs = history.iterations, history.costs
            snapshot = Snapshot.of(trainer)
            setup = Setup.of_trainer(trainer)
        if self._start is None:  # begin() was not called: the earliest parameters seen stand in
            self._start = self._best = snapshot
        if marker is not None and (marker["iteration"], marker["setting"]) != self._marker:
            if self._marker is not None or self._watch.start is not None:
                self._watch.reset()  # a setting changed: the cost before it is no reference ...
                self._watch.last_iteration = marker["iteration"] - 1  # ... the watch starts at the change
                self._best = snapshot
            self._marker = (marker["iteration"], marker["setting"])
        rise = None
        if iterations is not None:
            keep = iterations > self._watch.last_iteration
            rise = self._watch.feed(iterations[keep], costs[keep])
            if self._watch.improved:
                self._best = snapshot
            recovered = self._watch.recovered
            if recovered is not None and self._diagnosis is not None and self._diagnosis.kind == "rising" \
                    and self._diagnosis.recovered is None and recovered > self._diagnosis.iteration:
                with self._state:
                    self._diagnosis = dataclasses.replace(self._diagnosis, recovered=recovered)
        if time.perf_counter() >= self._quiet_until:
            measured = self.seconds
            if self.sharpness_every:
                self._track_sharpness(snapshot)
            if self.noise_every:
                last = self._noise[-1].iteration if self._noise else None
                if last is None or snapshot.iteration - last >= self.noise_every:
                    point = self._timed(measure_noise, trainer, snapshot, max_samples=self.noise_samples)
                    if point is not None:
                        with self._state:
                            _keep(self._noise, point)
            self._quiet_until = time.perf_counter() + (self.seconds - measured) * (1 / DUTY - 1)
        if diverged is not None and (self._diagnosis is None or self._diagnosis.kind != "nan"):
            event = Divergence(diverged["iteration"], diverged["layer"], setup.n_layers)
            self._diagnose(event, setup, snapshot)
        elif rise is not None:
            self._diagnose(rise, setup, snapshot)
        self._rearm(snapshot.iteration, diverged is not None)

    def _timed(self, measure, *args, **kwargs):
        started = time.perf_counter()
        try:
            return measure(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def _track_sharpness(self, snapshot):
        due = []
        if not self._points and self._start is not None and self._start.iteration < snapshot.iteration:
            due.append(self._start)  # turned on late: the point where training began first
        last = self._points[-1].iteration if self._points else None
        if last is None or snapshot.iteration - last >= self.sharpness_every:
            due.append(snapshot)
        for wanted in due:
            point = self._timed(measure_sharpness, self.trainer, wanted, v0=self._vector,
                                max_samples=self.sharpness_samples)
            if point is not None:
                self._vector = point.stability.vector
                with self._state:
                    _keep(self._points, _without_vector(point))

    def _diagnose(self, event, setup, snapshot):
        """Measure what names the causes, then keep (and announce) the explanation."""
        since = event.since if isinstance(event, Rise) else self._reference_iteration()
        every = self.sharpness_every or 0
        points = [p for p in self._points if p.iteration >= since - every]
        before = self._best if self._best is not None and self._best.iteration <= since else self._start
        if before is not None and not any(abs(p.iteration - before.iteration) <= max(every, WATCH_EVERY)
                                          for p in points):
            point = self._timed(measure_sharpness, self.trainer, before, v0=self._vector, tol=DIAGNOSIS_TOL)
            if point is not None:
                points.append(_without_vector(point))
        if not any(p.iteration == snapshot.iteration for p in points):
            point = self._timed(measure_sharpness, self.trainer, snapshot, v0=self._vector, tol=DIAGNOSIS_TOL)
            if point is not None:
                points.append(_without_vector(point))
        points.sort(key=lambda p: p.iteration)
        diagnosis = explain(event, setup, self._history_evidence(since, tuple(points)))
        with self._state:
            self._diagnosis = diagnosis
        if self.on_diagnosis is not None:
            self.on_diagnosis(diagnosis)

    def _history_evidence(self, since, points):
        with self.trainer.reading():
            history = self.trainer.history
            iterations = history.iterations
            norms = history.layer_stat("dW_norm")
            health = history.unit_health()
        if not len(iterations):
            return Evidence(sharpness=points, since=since)
        k = min(int(np.searchsorted(iterations, since)), len(iterations) - 1)
        after = norms[k:]
        with np.errstate(invalid="ignore"):
            finite = np.where(np.isnan(after), -np.inf, after)
        peak_rows = finite.argmax(axis=0)
        hidden = health.shape[1] > 0
        return Evidence(sharpness=points, since=int(iterations[k]),
                        health_before=health[k] if hidden else None,
                        health_now=health[-1] if hidden else None,
                        grad_before=norms[k], grad_peak=finite[peak_rows, np.arange(norms.shape[1])],
                        grad_peak_at=tuple(int(iterations[k + row]) for row in peak_rows))

    def _rearm(self, iteration, diverged):
        if diverged:
            self._next = math.inf
            return
        due = []
        if self.watch:
            due.append(iteration + WATCH_EVERY)
        if self.sharpness_every:
            last = self._points[-1].iteration if self._points else iteration
            due.append(max(iteration + 1, last + self.sharpness_every))
        if self.noise_every:
            last = self._noise[-1].iteration if self._noise else iteration
            due.append(max(iteration + 1, last + self.noise_every))
        self._next = min(due) if due else math.inf


def _without_vector(point):
    """A SharpnessPoint to keep: its eigenvector (one float per parameter) is only the next Lanczos
    start, which the diagnostics keep once."""
    return SharpnessPoint(point.iteration, dataclasses.replace(point.stability, vector=None))


def _keep(points, point):
    """Append, and past MAX_KEPT keep every other measurement (the first and the newest stay)."""
    points.append(point)
    if len(points) > MAX_KEPT:
        points[:] = points[:-1:2] + points[-1:]
