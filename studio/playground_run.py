"""What the Playground asks of its run beyond the Studio's own controls, as TensorFlow Playground does it:
the training and test loss at the end of every epoch, a Step of one epoch, a weight or a bias typed
in by hand (applied at the next step and marked on the loss chart like any change), and Regenerate
(new points, the same network). The engine is reached here, under the trainer's lock (pages take no
engine lock); nothing here draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backprop.errors import InputError

MAX_TYPED = 1e6  # the largest weight or bias a person may type (TensorFlow Playground has no limit)


class EpochLosses:
    """The trainer's epoch_observer: (iteration, epoch, training loss, test loss) at the end of every
    pass over the training set, with the network's own cost (cross-entropy for a class, half the
    squared error for a regression; no penalty), on the whole training set and the test set."""

    CAPACITY = 20_000  # rows kept; past it every second row goes (a long run stays bounded)

    def __init__(self, rows=()):
        self.rows = list(rows)

    def __call__(self, trainer):
        self.rows.append((trainer.iteration, trainer.epoch, *losses(trainer)))
        if len(self.rows) > self.CAPACITY:
            self.rows = self.rows[::2]


def losses(trainer):
    """(training loss, test loss) of the trainer's network now (test: NaN without test points);
    the caller holds the trainer's lock."""
    network = trainer.network
    with np.errstate(all="ignore"):
        train = network.evaluate(trainer.x_train, trainer.y_train)[0]
        test = network.evaluate(trainer.x_test, trainer.y_test)[0] if trainer.x_test is not None else math.nan
    return float(train), float(test)


def watch_epochs(studio):
    """Make the Studio's trainer record its losses per epoch (a fresh one's row 0: before any step).
    Returns the EpochLosses, or None before a network is built."""
    trainer = studio.trainer
    if trainer is None:
        return None
    with trainer.reading():
        if not isinstance(trainer.epoch_observer, EpochLosses):
            observer = EpochLosses()
            if trainer.iteration == 0:
                observer(trainer)
            trainer.epoch_observer = observer
        return trainer.epoch_observer


@dataclass(frozen=True)
class EpochView:
    """The losses for the page: per epoch, and now."""

    rows: np.ndarray  # (k, 4): iteration, epoch, training loss, test loss
    train_loss: float  # now (the network as it is, also between two epochs' ends)
    test_loss: float
    markers: list  # the run's changes: {iteration, setting, old, new}
    steps_per_epoch: int


def epoch_view(studio):
    """The losses per epoch and now, read under the trainer's lock; None before a network is built."""
    observer = watch_epochs(studio)
    trainer = studio.trainer
    if observer is None or trainer is None:
        return None
    with trainer.reading():
        rows = np.array(observer.rows, dtype=np.float64).reshape(-1, 4)
        train, test = losses(trainer)
        markers = list(trainer.history.markers)
        per_epoch = -(-trainer.x_train.shape[0] // (trainer.batch_size or trainer.x_train.shape[0]))
    return EpochView(rows, train, test, markers, per_epoch)


def steps_to_epoch_end(studio):
    """The steps that end the current epoch: ceil(n_train / batch) at an epoch's start."""
    trainer = studio.ensure_built()
    with trainer.reading():
        return trainer.steps_to_epoch_end


def step_epoch(studio):
    """TensorFlow Playground's Step: one epoch (to the end of the current one)."""
    return studio.step(steps_to_epoch_end(studio))


def parameter_target(target):
    """("weight", layer, to, from) or ("bias", layer, unit) from an event's id, else None."""
    if not isinstance(target, (list, tuple)) or not target:
        return None
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in target[1:])
    if target[0] == "weight" and len(target) == 4 and whole:
        return tuple(target)
    if target[0] == "bias" and len(target) == 3 and whole:
        return tuple(target)
    return None


def parameter_name(target):
    """How the loss chart's marker names a parameter, in the tutorial's notation: W1[2,1] is row 2,
    column 1 of W[1] (to unit 2 of layer 1 from input 1); b2[1] is unit 1's bias in layer 2."""
    if target[0] == "weight":
        return f"W{target[1]}[{target[2] + 1},{target[3] + 1}]"
    return f"b{target[1]}[{target[2] + 1}]"


def set_parameter(studio, target, value):
    """Give one weight or bias a value a person typed, between two steps (so at the next step, also
    while training), marked in the run's history like a setting's change. `target` is an event's
    id (parameter_target); raises InputError naming "weight" or "bias" for a target the network
    does not have or a value that is not a finite number. Returns the marker."""
    target = parameter_target(target)
    if target is None:
        raise InputError("weight", "not a weight or a bias of this network")
    field = target[0]
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(field, f"{value!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > MAX_TYPED:
        raise InputError(field, f"give a number from -{MAX_TYPED:g} to {MAX_TYPED:g}, got {value:g}")
    trainer = studio.ensure_built()
    with trainer.lock:
        params = list(trainer.network.params)
        layer = target[1]
        if not 1 <= layer <= len(params):
            raise InputError(field, f"the network has {len(params)} layers, not a layer {layer}")
        W, b = params[layer - 1]
        index = target[2:] if field == "weight" else (target[2], 0)
        array = W if field == "weight" else b
        if not all(0 <= i < n for i, n in zip(index, array.shape, strict=True)):
            raise InputError(field, f"layer {layer} has no {parameter_name(target)}")
        array = array.copy()  # parameters are replaced, never changed in place: snapshots stay valid
        old = float(array[index])
        array[index] = value
        params[layer - 1] = (array, b) if field == "weight" else (W, array)
        trainer.network.params = params
        marker = {"iteration": trainer.iteration, "setting": parameter_name(target), "old": round(old, 4),
                  "new": value}
        trainer.history.add_marker(*marker.values())
    return marker


def regenerate_points(studio, config):
    """TensorFlow Playground's Regenerate: new points (`config`: the set-up with the next seed) for
    the same network, which keeps its weights, its iteration and its history (a marker says when
    the points changed); training goes on if it was running."""
    trainer = studio.trainer
    if trainer is None:
        studio.build(config)
        return
    was_running = studio.running
    studio.pause()
    with trainer.reading():
        params, history, observer = list(trainer.network.params), trainer.history, trainer.epoch_observer
    old_seed = studio.config.seed
    studio.restore(config, params, history)
    new = studio.trainer
    with new.lock:
        new.history.add_marker(new.iteration, "points (seed)", old_seed, config.seed)
        if isinstance(observer, EpochLosses):
            new.epoch_observer = observer
    studio.message = ("info", f"New points (seed {config.seed}); the network keeps its weights and trains "
                              "on them.")
    if was_running:
        studio.train()
