"""The Math page's shapes are the engine's shapes, and the hand trace is the engine's step."""

import numpy as np
import pytest

from backprop.network import Network
from studio.math_shapes import latex_matrix, shape_text, step_shapes, tiny_trace


@pytest.mark.parametrize("sizes, output, activation, n", [
    ([784, 196, 1], "sigmoid", "sigmoid", 37),
    ([12, 7, 5, 3, 1], "sigmoid", "relu", 5),
    ([20, 9, 10], "softmax", "tanh", 11),
    ([6, 4], "softmax", "leaky_relu", 2),
])
def test_shapes_match_the_arrays_the_engine_makes(sizes, output, activation, n):
    net = Network(sizes, activation=activation, output=output, seed=2)
    rng = np.random.RandomState(0)
    X = rng.rand(n, sizes[0])
    Y = rng.randint(0, net.n_classes, size=n)
    activations = net.forward(X)
    _, grads = net.loss_and_gradients(X, Y)
    shapes = {array: shape for array, shape, _ in step_shapes(sizes, n, output)}
    assert shapes["X"] == X.shape and shapes["A[0]"] == X.T.shape
    for l, (A, (W, b), (dW, db)) in enumerate(zip(activations, net.params, grads, strict=True), start=1):
        assert shapes[f"A[{l}]"] == A.shape == shapes[f"Z[{l}]"]
        assert shapes[f"W[{l}]"] == W.shape == dW.shape == shapes[f"dW[{l}]"]
        assert shapes[f"b[{l}]"] == b.shape == db.shape == shapes[f"db[{l}]"]
        assert shapes[f"dZ[{l}]"] == A.shape
        if l < net.n_layers:
            assert shapes[f"dA[{l}]"] == A.shape
    assert shapes["Y"] == activations[-1].shape


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_hand_trace_equals_the_engine(activation):
    trace = tiny_trace(activation)
    net = trace["network"]
    cost, grads = net.loss_and_gradients(trace["X"], trace["Y"])
    assert trace["cost"] == pytest.approx(cost, rel=1e-12)
    for (dW, db), l in zip(grads, (1, 2), strict=True):
        np.testing.assert_allclose(trace[f"dW{l}"], dW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(trace[f"db{l}"], db, rtol=1e-12, atol=1e-15)
    assert trace["Z1"].shape == (3, 4) and trace["dW1"].shape == (3, 2) and trace["A2"].shape == (1, 4)
    np.testing.assert_allclose(trace["A2"], net.forward(trace["X"])[-1])


def test_text_helpers():
    assert shape_text((11272, 784)) == "(11,272, 784)"
    assert latex_matrix([[1, 2.5]], digits=1) == "\\begin{bmatrix}1.0 & 2.5\\end{bmatrix}"
