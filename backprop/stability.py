"""Is this learning rate stable for this curvature? The optimizer's stability limit on sharpness.

Gradient descent on a quadratic with top Hessian eigenvalue λ_max diverges along that eigenvector
once λ_max > 2/η. With heavy-ball momentum β (the engine's v := βv + g, W -= ηv) the limit is
(2 + 2β)/η. Adam is judged by its preconditioned sharpness, the top eigenvalue of
P^{-1/2} H P^{-1/2} with P its per-parameter denominators, against (2 + 2β1)/(η(1 - β1)) (Cohen
et al. 2022, "Adaptive gradient methods at the edge of stability"; 38/η for β1 = 0.9). The engine's
Adam folds the bias corrections into the step, which is η m̂ / (sqrt(v̂) + ε / sqrt(1 - β2^t)), so
P = sqrt(v̂) + ε / sqrt(1 - β2^t) with v̂ = v / (1 - β2^t): the ε term is the engine's, exactly.

Full-batch gradient descent tends to raise the sharpness until it reaches 2/η and then hovers
there, the cost still falling but unevenly (Cohen, Kaur, Li, Kolter, Talwalkar, ICLR 2021, "the edge
of stability"); `SharpnessTracker` measures it every few steps of a Trainer, warm-starting Lanczos
from the last top eigenvector, on one fixed sample so that the measurements compare.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .curvature import SAMPLES, HessianOperator, fixed_sample, lanczos
from .errors import InputError
from .optimizers import make_optimizer

WARM_STEPS = 4  # Lanczos steps at least from a warm start
EDGE_BAND = 0.15  # within ±15% of the limit: "at the edge of stability"
MEASURES = {"sgd": "λ_max", "momentum": "λ_max", "adam": "preconditioned λ_max"}
FORMULAS = {"sgd": "2/η", "momentum": "(2+2β)/η", "adam": "(2+2β₁)/((1−β₁)η)"}


def stability_limit(optimizer, learning_rate=None):
    """(limit, formula) of the optimizer's stability limit on its sharpness measure; learning_rate
    stands for the optimizer's own (e.g. after a schedule's factor)."""
    name = optimizer.name
    if name not in FORMULAS:
        raise InputError("optimizer", f"no stability limit known for {name!r}")
    lr = float(optimizer.learning_rate if learning_rate is None else learning_rate)
    if not lr > 0:
        raise InputError("learning_rate", f"must be positive, got {lr!r}")
    if name == "sgd":
        limit = 2.0 / lr
    elif name == "momentum":
        limit = (2.0 + 2.0 * optimizer.momentum) / lr
    else:
        limit = (2.0 + 2.0 * optimizer.beta1) / ((1.0 - optimizer.beta1) * lr)
    return limit, FORMULAS[name]


def adam_preconditioner(optimizer):
    """[(PW, Pb)] per layer: Adam's denominators sqrt(v̂) + ε/sqrt(1 - β2^t) at its last step."""
    if optimizer.name != "adam":
        raise InputError("optimizer", f"{optimizer.name} has no preconditioner")
    if optimizer.second is None or optimizer.t == 0:
        raise InputError("optimizer", "Adam has taken no step yet, so its preconditioner is not known; "
                                      "measure after the first step")
    correction = 1.0 - optimizer.beta2 ** optimizer.t
    eps = optimizer.epsilon / math.sqrt(correction)
    return [(np.sqrt(vW / correction) + eps, np.sqrt(vb / correction) + eps) for vW, vb in optimizer.second]


def _num(value):
    """52.1, 20.0, 0.380, 1,234: three significant figures, or whole numbers from 1000."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:#.3g}".rstrip(".")


def stability_reading(measure, value, limit, formula, stable_learning_rate):
    """One line, e.g. "λ_max 52.1 > 2/η = 20.0: this learning rate is above the stability limit
    for this curvature; lr < 0.038 would be stable"."""
    if value <= 0:
        return (f"{measure} {_num(value)} ≤ 0: no positive curvature here, so no learning rate is "
                f"unstable for it")
    ratio = value / limit
    stated = f"{measure} {_num(value)} {'>' if ratio > 1 else '≤'} {formula} = {_num(limit)}"
    lr = f"{stable_learning_rate:.2g}"
    if ratio > 1 + EDGE_BAND:
        return (f"{stated}: this learning rate is above the stability limit for this curvature; "
                f"lr < {lr} would be stable")
    if ratio > 1:
        return (f"{stated}: at the edge of stability, where the cost falls unevenly rather than "
                f"diverging; lr < {lr} would be stable")
    if ratio >= 1 - EDGE_BAND:
        return f"{stated}: stable, close to the limit (lr up to {lr} would be stable)"
    return f"{stated}: stable for this curvature (lr up to {lr} would be)"


@dataclass(frozen=True)
class Stability:
    """The optimizer's sharpness measure against its stability limit."""

    optimizer: str
    measure: str  # "λ_max" (gradient descent, momentum) or "preconditioned λ_max" (Adam)
    value: float
    limit: float
    formula: str  # the limit's formula, e.g. "2/η"
    learning_rate: float  # the learning rate judged (with the schedule's factor)
    stable_learning_rate: float  # the largest learning rate stable for this curvature (inf: any)
    residual: float  # ||H v - λ v|| of the measured pair: a bound on the value's error
    samples: int
    products: int  # Hessian-vector products spent
    seconds: float
    reading: str
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)  # flat top eigenvector

    @property
    def ratio(self):
        return self.value / self.limit

    @property
    def verdict(self):
        """'stable', 'edge' (above the limit by at most EDGE_BAND) or 'unstable'."""
        return "stable" if self.ratio <= 1 else "edge" if self.ratio <= 1 + EDGE_BAND else "unstable"

    def to_dict(self):
        row = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "vector"}
        return {**row, "ratio": self.ratio, "verdict": self.verdict}


def measure_stability(network, X, Y, optimizer, l2=0.0, l1=0.0, learning_rate=None, max_samples=SAMPLES,
                      seed=0, tol=1e-3, v0=None, params=None, preconditioner=None):
    """Measure the optimizer's sharpness on `fixed_sample` of (X, Y) and judge it against its limit.

    `v0` warm-starts Lanczos (a previous top eigenvector): a random part of a third of its length is
    mixed in and at least WARM_STEPS steps are taken, so a new top direction is still found.
    `params` and `preconditioner` (Adam's, as `adam_preconditioner` gives) stand in for the
    network's parameters and the optimizer's state: a trainer's snapshot (see `trainer_stability`).
    """
    started = time.perf_counter()
    limit, formula = stability_limit(optimizer, learning_rate)
    lr = float(optimizer.learning_rate if learning_rate is None else learning_rate)
    index = fixed_sample(len(X), max_samples, seed)
    if len(index) < len(X):
        X, Y = np.asarray(X)[index], np.asarray(Y)[index]
    operator = HessianOperator(network, X, Y, l2=l2, l1=l1, params=params)
    matvec = operator.flat_matvec
    if optimizer.name == "adam":
        pairs = preconditioner if preconditioner is not None else adam_preconditioner(optimizer)
        scale = 1.0 / np.sqrt(operator.flatten(pairs))

        def matvec(x):
            return scale * operator.flat_matvec(scale * x)

    min_steps = 1
    if v0 is not None:
        v0 = np.asarray(v0, np.float64).ravel()
        if v0.shape == (operator.dim,) and np.isfinite(v0).all() and np.linalg.norm(v0) > 0:
            rng = np.random.default_rng(seed)
            noise = rng.standard_normal(operator.dim)
            v0 = v0 / np.linalg.norm(v0) + noise / (3.0 * np.linalg.norm(noise))
            min_steps = WARM_STEPS
        else:
            v0 = None
    eigen = lanczos(matvec, operator.dim, k=1, v0=v0, tol=tol, seed=seed, min_steps=min_steps)
    value = float(eigen.values[0])
    stable_lr = lr * limit / value if value > 0 else math.inf
    measure = MEASURES[optimizer.name]
    return Stability(optimizer=optimizer.name, measure=measure, value=value, limit=limit, formula=formula,
                     learning_rate=lr, stable_learning_rate=stable_lr, residual=float(eigen.residuals[0]),
                     samples=operator.n, products=operator.products,
                     seconds=time.perf_counter() - started,
                     reading=stability_reading(measure, value, limit, formula, stable_lr),
                     vector=eigen.vectors[:, 0])


def trainer_stability(trainer, max_samples=SAMPLES, seed=0, tol=1e-3, v0=None):
    """`measure_stability` for a Trainer's network, data, penalties, optimizer and scheduled learning
    rate now. What it needs is copied under the trainer's reading lock; the measurement runs after
    it is released, so training waits only for the copy."""
    return _measured_at(trainer, max_samples, seed, tol, v0)[1]


def _measured_at(trainer, max_samples, seed, tol, v0):
    """(the iteration of the parameters measured, trainer_stability): both read in one hold of the
    lock, so a training thread stepping meanwhile cannot put the label a step off."""
    with trainer.reading():
        iteration = trainer.iteration
        params = list(trainer.network.params)  # the trainer replaces arrays, never changes them
        optimizer = trainer.optimizer
        learning_rate = optimizer.learning_rate * trainer.lr_factor()
        penalties = trainer.penalties()
        preconditioner = adam_preconditioner(optimizer) if optimizer.name == "adam" else None
        optimizer_values = optimizer.values()
        name = optimizer.name
    judged = make_optimizer(name, **optimizer_values)  # the settings at the copy, without the live state
    return iteration, measure_stability(trainer.network, trainer.x_train, trainer.y_train, judged,
                                        **penalties, learning_rate=learning_rate, max_samples=max_samples,
                                        seed=seed, tol=tol, v0=v0, params=params,
                                        preconditioner=preconditioner)


@dataclass(frozen=True)
class SharpnessPoint:
    iteration: int  # steps taken when measured (the parameters of the cost at that iteration)
    stability: Stability

    def to_dict(self):
        return {"iteration": self.iteration, **self.stability.to_dict()}


class SharpnessTracker:
    """The sharpness every `every` steps of a Trainer, on one fixed sample, each Lanczos run
    warm-started from the last top eigenvector (a few products instead of tens).

        tracker = SharpnessTracker(every=20)
        for _ in range(steps):
            trainer.step(1)
            tracker.after_step(trainer)   # a SharpnessPoint every 20 steps, else None
    """

    def __init__(self, every=20, max_samples=SAMPLES, seed=0, tol=1e-3):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise InputError("track_sharpness", f"must be a whole number of steps from 1, got {every!r}")
        self.every = int(every)
        self.max_samples, self.seed, self.tol = max_samples, seed, tol
        self.points = []
        self.seconds = 0.0
        self._vector = None

    def due(self, iteration):
        return iteration % self.every == 0

    def measure(self, trainer):
        """Measure now; None while Adam has taken no step (no preconditioner yet) or once the
        trainer has diverged."""
        if trainer.diverged is not None or (trainer.optimizer.name == "adam" and trainer.optimizer.t == 0):
            return None
        iteration, stability = _measured_at(trainer, self.max_samples, self.seed, self.tol, self._vector)
        self._vector = stability.vector
        self.seconds += stability.seconds
        point = SharpnessPoint(iteration, stability)
        self.points.append(point)
        return point

    def after_step(self, trainer):
        return self.measure(trainer) if self.due(trainer.iteration) else None

    def rows(self):
        """One dict per measurement, for a chart or a --json file."""
        return [point.to_dict() for point in self.points]
