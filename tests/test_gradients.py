"""Backpropagated gradients agree with central differences for every set-up the engine offers."""

import itertools

import numpy as np
import pytest

from backprop.activations import ACTIVATIONS
from backprop.gradcheck import gradient_check, relative_error
from backprop.network import OUTPUTS, Network


def random_problem(n_layers, activation, output, seed, l2=0.0):
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(3, 7))
    hidden = [int(h) for h in rng.integers(2, 6, size=n_layers - 1)]
    n_out = 1 if output == "sigmoid" else int(rng.integers(2, 5))
    net = Network([n_in, *hidden, n_out], activation=activation, output=output, init="xavier",
                  seed=seed)
    # Non-zero random biases keep ReLU units off their kink at 0, where no derivative exists.
    net.set_params([(W, rng.uniform(-0.5, 0.5, size=b.shape)) for W, b in net.params])
    n_samples = 9
    X = rng.uniform(0, 1, size=(n_samples, n_in))
    if output == "linear":  # regression: a number per output unit
        Y = rng.normal(size=(n_samples, n_out))
    else:
        Y = rng.integers(0, net.n_classes, size=n_samples)
    return net, X, Y


CASES = list(itertools.product(ACTIVATIONS, OUTPUTS, [1, 2, 3, 4]))


@pytest.mark.parametrize("activation, output, n_layers", CASES)
def test_gradients_match_numeric_ones(activation, output, n_layers):
    seed = CASES.index((activation, output, n_layers))
    net, X, Y = random_problem(n_layers, activation, output, seed)
    for layer in gradient_check(net, X, Y, max_entries=40, seed=seed):
        assert layer["dW_error"] < 1e-6, (activation, output, layer)
        assert layer["db_error"] < 1e-6, (activation, output, layer)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_gradients_with_l2_penalty_match(activation):
    net, X, Y = random_problem(3, activation, "softmax", seed=11)
    for layer in gradient_check(net, X, Y, l2=0.3, max_entries=40):
        assert max(layer["dW_error"], layer["db_error"]) < 1e-6, layer


def test_float32_network_gradients_agree_with_float64():
    net64, X, Y = random_problem(3, "tanh", "softmax", seed=5)
    net32 = Network(**{**net64.config(), "dtype": "float32"})
    net32.set_params(net64.params)
    cost64, grads64 = net64.loss_and_gradients(X, Y)
    cost32, grads32 = net32.loss_and_gradients(X.astype(np.float32), Y)
    assert abs(cost32 - cost64) < 1e-5
    for (dW64, db64), (dW32, db32) in zip(grads64, grads32, strict=True):
        assert dW32.dtype == np.float32 and db32.dtype == np.float32
        assert relative_error(dW32, dW64) < 1e-5 and relative_error(db32, db64) < 1e-5
    assert all(layer["dW_error"] < 1e-6 for layer in gradient_check(net32, X, Y, max_entries=30))


def test_gradient_check_catches_a_wrong_gradient(monkeypatch):
    """The check itself can fail: break backprop (drop the derivative of the activation)."""
    import backprop.network as network_module
    net, X, Y = random_problem(2, "sigmoid", "sigmoid", seed=3)
    monkeypatch.setitem(network_module.BACKWARD, "sigmoid", lambda A, dA: dA)
    report = gradient_check(net, X, Y, max_entries=40)
    assert report[0]["dW_error"] > 1e-3
