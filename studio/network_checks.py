"""Checks of a Studio's network for the Gradient check page: backprop's gradients against numeric
ones, and a learning-rate sweep. Each works on a copy taken under the trainer's lock, so the run
(training or paused) is never touched. No Streamlit."""

import dataclasses

from backprop import gradcheck, lr_finder


@dataclasses.dataclass(frozen=True)
class LayerCheck:
    """One layer's relative errors, numeric against backprop (0: a perfect match)."""

    layer: int  # counted from 1
    dW_error: float
    db_error: float
    checked: int  # entries of W and b compared

    @property
    def worst(self):
        return max(self.dW_error, self.db_error)


@dataclasses.dataclass(frozen=True)
class GradientCheck:
    iteration: int  # the steps the checked network had taken
    layers: tuple  # a LayerCheck per layer, first layer first


def check_gradients(studio, n_samples, max_entries):
    """Compare the gradients of the Studio's network now on its first `n_samples` training images,
    on up to `max_entries` entries of each W and each b (a seeded sample of a larger layer)."""
    trainer = studio.trainer
    with trainer.reading():
        network, penalties, iteration = trainer.network.copy(), trainer.penalties(), trainer.iteration
        X, Y = trainer.x_train[:n_samples], trainer.y_train[:n_samples]
    report = gradcheck.gradient_check(network, X, Y, **penalties, max_entries=max_entries)
    return GradientCheck(iteration, tuple(LayerCheck(row["layer"], row["dW_error"], row["db_error"],
                                                     row["checked"]) for row in report))


def find_learning_rate(studio):
    """A short sweep of growing learning rates that trains a copy of the Studio's network on its
    set-up: a backprop.lr_finder.LRFinderResult with the suggested rate. Raises an InputError when
    even the smallest rate diverges."""
    trainer = studio.trainer
    with trainer.reading():
        network = trainer.network.copy()
    return lr_finder.find_learning_rate(studio.config, trainer.data, network=network)
