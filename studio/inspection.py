"""What the Inspect page shows of a Studio's network, read once per page run under the trainer's
lock: a copy of the network, its data and what its history kept. The page runs the copy through
the methods here; nothing here changes the run. No Streamlit."""

import dataclasses

import numpy as np

from backprop.drawing import MAX_SIDE, ink_from_rgba, mnist_style, png_size
from backprop.errors import InputError
from backprop.health import condition_of

from .analysis_figures import most_confident_wrong


@dataclasses.dataclass(frozen=True)
class TestResults:
    """The network's answers on the whole test set."""

    probabilities: np.ndarray  # (n_test, classes)
    predicted: np.ndarray  # (n_test,) the most probable class of each image
    correct: int  # images whose predicted class is the true one
    total: int  # test images
    worst: np.ndarray  # the most confidently wrong images' indices, most confident first

    @property
    def accuracy(self):
        return self.correct / self.total


@dataclasses.dataclass(frozen=True)
class LayerOutputs:
    """One sample run through the network: every layer's activations and the output's classes."""

    activations: list  # [A1, ..., AL], each (units, 1)
    probabilities: np.ndarray  # (classes,)


@dataclasses.dataclass(frozen=True)
class ActivationRecords:
    """The activations' spread over training: one histogram per hidden layer at each kept step."""

    iterations: np.ndarray
    low: np.ndarray
    high: np.ndarray
    shares: np.ndarray


@dataclasses.dataclass(frozen=True)
class Inspection:
    """A Studio's network at one moment (a copy) with its data and what its history kept."""

    network: object  # a copy of the network: running it never touches the run
    iteration: int  # steps done
    data: object  # the run's Dataset
    health_iterations: np.ndarray  # the steps unit health was recorded at
    unit_health: np.ndarray  # (steps, hidden layers, 2): dead and saturated shares
    activation_records: ActivationRecords
    snapshot_iterations: np.ndarray  # the parameter snapshots kept along the run (the PCA plane's)
    snapshots: np.ndarray
    trajectory_too_large: bool  # too many parameters to keep snapshots
    trainer: object = dataclasses.field(repr=False, compare=False)  # the run it was read from

    @property
    def n_layers(self):
        return self.network.n_layers

    @property
    def activation(self):
        return self.network.activation

    @property
    def output(self):
        return self.network.output

    @property
    def classifies(self):
        return self.network.output != "linear"

    @property
    def class_names(self):
        return [str(name) for name in self.data.class_names]

    @property
    def health_condition(self):
        """'dead', 'saturated' or None: what unhealthy state the hidden units can be in."""
        return condition_of(self.network.activation)

    def test_results(self, worst=8):
        """Accuracy, answers and the `worst` most confidently wrong images of the test set."""
        probabilities = self.network.predict_proba(self.data.x_test)
        predicted = probabilities.argmax(axis=1)
        y = self.data.y_test
        return TestResults(probabilities, predicted, int((predicted == y).sum()), len(y),
                           most_confident_wrong(probabilities, y, k=worst))

    def layer_outputs(self, sample):
        """A sample (1, features) through the network: every layer's activations and the classes'
        probabilities."""
        return LayerOutputs(self.network.forward(sample), self.network.predict_proba(sample)[0])


def inspect_network(studio):
    """An Inspection of the Studio's network now, or None before one is built."""
    trainer = studio.trainer
    if trainer is None:
        return None
    with trainer.reading():
        iteration = trainer.iteration
        history = trainer.history
        snapshot_iterations, snapshots = history.trajectory.snapshots(before=iteration)
        return Inspection(
            network=trainer.network.copy(), iteration=iteration, data=trainer.data,
            health_iterations=history.iterations, unit_health=history.unit_health(),
            activation_records=ActivationRecords(*history.histograms.arrays()),
            snapshot_iterations=snapshot_iterations, snapshots=snapshots,
            trajectory_too_large=history.trajectory.too_large, trainer=trainer)


def drawn_digit(png, rgba):
    """A drawing from the canvas (its PNG bytes and its RGBA pixels) prepared like an MNIST digit
    (FIELD x FIELD, ink in [0, 1]), or None when nothing is drawn. The size is read from the PNG's
    header before the image is unpacked: a browser sends the canvas at its screen's pixel ratio
    (280, 560, 840 ... pixels), anything past MAX_SIDE is refused with an InputError."""
    if png is None:
        return None
    if max(png_size(png)) > MAX_SIDE:
        raise InputError("drawing", f"is {png_size(png)} pixels; at most {MAX_SIDE} a side")
    return mnist_style(ink_from_rgba(rgba))
