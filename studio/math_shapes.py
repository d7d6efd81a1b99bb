"""The Math page's content as data: the shape of every array in one training step, and a
numeric trace of one step on a network small enough to follow by hand.

Shapes follow the engine (backprop/network.py): samples are columns inside, A0 = Xᵀ, W[l] is
(n_l, n_{l-1}), and the 1/n of the mean cost is folded into the output layer's dZ, so that
dW = dZ · A[l-1]ᵀ and db = row sums of dZ carry no further 1/n.
"""

import dataclasses

import numpy as np

from backprop.activations import ACTIVATIONS, BACKWARD, sigmoid
from backprop.network import Network


def step_shapes(sizes, n_samples, output="sigmoid"):
    """[(array, shape, equation)] for the forward then the backward pass, in order (plain text)."""
    n, L = int(n_samples), len(sizes) - 1
    rows = [("X", (n, sizes[0]), "the data: one sample per row"),
            ("A[0]", (sizes[0], n), "A[0] = Xᵀ: one sample per column")]
    for l in range(1, L + 1):
        g = ("sigmoid" if output == "sigmoid" else "softmax") if l == L else "g"
        rows += [(f"W[{l}]", (sizes[l], sizes[l - 1]), "weights"),
                 (f"b[{l}]", (sizes[l], 1), "biases, added to every column"),
                 (f"Z[{l}]", (sizes[l], n), f"Z[{l}] = W[{l}] · A[{l - 1}] + b[{l}]"),
                 (f"A[{l}]", (sizes[l], n), f"A[{l}] = {g}(Z[{l}])")]
    rows.append(("Y", (sizes[L], n), "labels" + (" (one-hot columns)" if output == "softmax" else "")))
    rows.append((f"dZ[{L}]", (sizes[L], n), f"dZ[{L}] = (A[{L}] - Y) / n"))
    for l in range(L, 0, -1):
        rows += [(f"dW[{l}]", (sizes[l], sizes[l - 1]), f"dW[{l}] = dZ[{l}] · A[{l - 1}]ᵀ"),
                 (f"db[{l}]", (sizes[l], 1), f"db[{l}] = row sums of dZ[{l}]")]
        if l > 1:
            rows += [(f"dA[{l - 1}]", (sizes[l - 1], n), f"dA[{l - 1}] = W[{l}]ᵀ · dZ[{l}]"),
                     (f"dZ[{l - 1}]", (sizes[l - 1], n), f"dZ[{l - 1}] = dA[{l - 1}] ⊙ g'(Z[{l - 1}])")]
    return rows


def shape_text(shape):
    return "(" + ", ".join(f"{d:,}" for d in shape) + ")"


@dataclasses.dataclass(frozen=True)
class SetupShapes:
    """The arrays of one training step of a Studio's network."""

    sizes: list  # layer sizes, the input first
    activation: str  # the hidden layers'
    n_samples: int  # samples per step
    mini_batch: bool  # False: every step takes the full training set
    rows: list  # (array, shape, equation) in step order: step_shapes

    @property
    def table(self):
        """The rows as a table: array, shape (as text) and equation."""
        return [{"array": array, "shape": shape_text(shape), "equation": equation}
                for array, shape, equation in self.rows]


def setup_shapes(studio):
    """The SetupShapes of the Studio's network, or None before one is built."""
    trainer = studio.trainer
    if trainer is None:
        return None
    network = trainer.network
    n = trainer.batch_size or len(trainer.y_train)
    return SetupShapes(list(network.sizes), network.activation, n, bool(trainer.batch_size),
                       step_shapes(network.sizes, n, network.output))


def tiny_trace(activation="sigmoid", n_samples=4, seed=3):
    """One forward and backward step of a 2-3-1 network on 4 samples, every value kept.

    Written out here step by step (not by calling the engine's backward) so that a reader can
    check each line; the tests compare the result with the engine's gradients.
    """
    net = Network([2, 3, 1], activation=activation, output="sigmoid", init="seed", seed=seed)
    X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.2]])[:n_samples]
    Y = np.array([1, 1, 0, 0])[:n_samples]
    (W1, b1), (W2, b2) = net.params
    n = X.shape[0]
    A0 = X.T
    Z1 = W1 @ A0 + b1
    A1 = ACTIVATIONS[activation](Z1.copy())
    Z2 = W2 @ A1 + b2
    A2 = sigmoid(Z2.copy())
    cost = float(-np.mean(Y * np.log(A2[0]) + (1 - Y) * np.log(1 - A2[0])))
    dZ2 = (A2 - Y) / n
    dW2 = dZ2 @ A1.T
    db2 = dZ2.sum(axis=1, keepdims=True)
    dA1 = W2.T @ dZ2
    dZ1 = BACKWARD[activation](A1, dA1.copy())
    dW1 = dZ1 @ A0.T
    db1 = dZ1.sum(axis=1, keepdims=True)
    return {"network": net, "X": X, "Y": Y, "A0": A0, "W1": W1, "b1": b1, "Z1": Z1, "A1": A1,
            "W2": W2, "b2": b2, "Z2": Z2, "A2": A2, "cost": cost, "dZ2": dZ2, "dW2": dW2,
            "db2": db2, "dA1": dA1, "dZ1": dZ1, "dW1": dW1, "db1": db1}


def latex_matrix(values, digits=3):
    """A small array as a LaTeX bmatrix."""
    values = np.atleast_2d(values)
    body = " \\\\ ".join(" & ".join(f"{v:.{digits}f}" for v in row) for row in values)
    return "\\begin{bmatrix}" + body + "\\end{bmatrix}"
