"""Learning-rate finder: a short training sweep over exponentially growing learning rates.

Leslie Smith's method (as in fastai's lr_find): start tiny, multiply the learning rate by a
constant factor every step, record the cost, and stop once the smoothed cost explodes. The
cost falls fastest somewhere before the minimum; that learning rate is the suggestion. The
suggestion is the smaller of that and one tenth of the learning rate at the minimum (the
steepest point lags late on short sweeps, since every step builds on the last). The
sweep trains a copy of the network, so the run being watched is untouched.
"""

from dataclasses import asdict, dataclass
from types import SimpleNamespace

import numpy as np

from .errors import InputError
from .network import Network
from .optimizers import make_optimizer
from .trainer import Trainer


@dataclass
class LRFinderResult:
    learning_rates: list  # the learning rate used at each step taken
    costs: list  # the cost measured at each step (before that step's update)
    smoothed: list  # exponentially smoothed, bias-corrected costs
    suggestion: float  # the smaller of steepest_lr and minimum_lr / 10: a safe start
    steepest_lr: float | None  # where the smoothed cost falls fastest (None: too few steps)
    minimum_lr: float  # learning rate at the lowest smoothed cost
    stopped: str  # why the sweep ended

    def to_dict(self):
        return asdict(self)


def _check_range(min_lr, max_lr, steps):
    for name, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise InputError(name, f"must be a positive number, got {value!r}")
    if max_lr <= min_lr:
        raise InputError("max_lr", f"must be larger than min_lr ({min_lr}), got {max_lr}")
    if not (isinstance(steps, (int, np.integer)) and 10 <= steps <= 2000):
        raise InputError("steps", f"must be a whole number from 10 to 2000, got {steps!r}")


def steepest_lr(learning_rates, smoothed, skip_start=0.1):
    """The learning rate where the smoothed cost falls fastest (per factor of ten), before its
    minimum; None when there are too few points to tell."""
    smoothed = np.asarray(smoothed, dtype=np.float64)
    lowest = int(np.argmin(smoothed))
    start = int(len(smoothed) * skip_start)
    if lowest - start < 3:
        return None
    slope = np.gradient(smoothed[: lowest + 1], np.log10(learning_rates[: lowest + 1]))
    return float(learning_rates[start + int(np.argmin(slope[start:]))])


def find_learning_rate(config, data, network=None, min_lr=1e-6, max_lr=10.0, steps=100,
                       max_samples=4096, smoothing=0.9, explode=4.0):
    """Sweep learning rates from min_lr to max_lr over `steps` training steps of the set-up.

    config: a validated TrainConfig (optimizer, batch size, l2 and, without `network`, the
    architecture); data: its Dataset; network: start from a copy of these weights instead of
    a fresh network. At most `max_samples` training samples are used (seeded), so a full-batch
    set-up stays quick. Stops early when the smoothed cost exceeds `explode` times its best.
    """
    _check_range(min_lr, max_lr, steps)
    if network is None:
        sizes = [data.n_features] + list(config.layers)
        network = Network(sizes, activation=config.activation, output=config.output,
                          init=config.init, seed=config.seed, dtype=config.dtype)
    else:
        network = network.copy()
    x, y = data.x_train, data.y_train
    if len(y) > max_samples:
        pick = np.sort(np.random.RandomState(config.seed).choice(len(y), max_samples, replace=False))
        x, y = x[pick], y[pick]
    sample = SimpleNamespace(x_train=x, y_train=y, x_test=x[:0], y_test=y[:0])
    optimizer_values = config.optimizer_values()
    optimizer_values["learning_rate"] = float(min_lr)
    trainer = Trainer(network, make_optimizer(config.optimizer, **optimizer_values), sample,
                      batch_size=config.batch_size, l2=config.l2, l1=config.l1, eval_every=10**9,
                      shuffle_seed=config.seed, history_capacity=steps + 1)

    learning_rates = np.geomspace(min_lr, max_lr, steps)
    used, costs, smoothed = [], [], []
    average, best = 0.0, np.inf
    stopped = f"it reached max_lr {max_lr:g}"
    for i, lr in enumerate(learning_rates):
        trainer.optimizer.learning_rate = float(lr)
        record = trainer.step(1)[0]
        if "diverged" in record or not np.isfinite(record["cost"]):
            stopped = f"the cost became NaN/Inf at learning rate {lr:.3g}"
            break
        cost = float(record["cost"])
        average = smoothing * average + (1 - smoothing) * cost
        value = average / (1 - smoothing ** (i + 1))
        used.append(float(lr))
        costs.append(cost)
        smoothed.append(value)
        best = min(best, value)
        if value > explode * best:
            stopped = f"the cost exploded (over {explode:g}x its best) at learning rate {lr:.3g}"
            break
    if not used:
        raise InputError("min_lr", f"training diverged at the very first learning rate {min_lr:g}; "
                                   "start the sweep lower")
    steepest = steepest_lr(np.array(used), smoothed)
    minimum = used[int(np.argmin(smoothed))]
    suggestion = minimum / 10 if steepest is None else min(steepest, minimum / 10)
    return LRFinderResult(learning_rates=used, costs=costs, smoothed=smoothed, suggestion=suggestion,
                          steepest_lr=steepest, minimum_lr=minimum, stopped=stopped)
