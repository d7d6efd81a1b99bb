"""The network's shapes, cost values, dtypes and input checks."""

import math

import numpy as np
import pytest

from backprop.errors import InputError
from backprop.network import Network


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_cost_matches_a_hand_computation_sigmoid_output():
    net = Network([2, 2, 1], activation="tanh")
    W1, b1 = [[0.5, -1.0], [2.0, 0.25]], [0.1, -0.2]
    W2, b2 = [[1.5, -0.5]], [0.3]
    net.set_params([(np.array(W1), np.array([b1]).T), (np.array(W2), np.array([b2]).T)])
    X, Y = [[1.0, 2.0], [0.0, -1.0], [0.5, 0.5]], [1, 0, 1]
    total = 0.0
    for x, y in zip(X, Y, strict=True):
        hidden = [math.tanh(W1[j][0] * x[0] + W1[j][1] * x[1] + b1[j]) for j in range(2)]
        a = sigmoid(W2[0][0] * hidden[0] + W2[0][1] * hidden[1] + b2[0])
        total += -(y * math.log(a) + (1 - y) * math.log(1 - a))
    cost, _ = net.loss_and_gradients(np.array(X), np.array(Y))
    assert cost == pytest.approx(total / 3, rel=1e-12)
    assert net.evaluate(np.array(X), np.array(Y))[0] == pytest.approx(total / 3, rel=1e-12)


def test_cost_matches_a_hand_computation_softmax_output_with_l2():
    net = Network([2, 3], output="softmax")
    W, b = [[1.0, 0.0], [0.0, 1.0], [-1.0, 2.0]], [0.0, 0.5, -0.5]
    net.set_params([(np.array(W), np.array([b]).T)])
    X, Y = [[0.2, 0.4], [1.0, -1.0]], [2, 0]
    total = 0.0
    for x, y in zip(X, Y, strict=True):
        z = [W[k][0] * x[0] + W[k][1] * x[1] + b[k] for k in range(3)]
        total += -math.log(math.exp(z[y]) / sum(math.exp(v) for v in z))
    penalty = 0.5 * 0.1 * sum(w * w for row in W for w in row)
    cost, _ = net.loss_and_gradients(np.array(X), np.array(Y), l2=0.1)
    assert cost == pytest.approx(total / 2 + penalty, rel=1e-12)


def test_cost_stays_finite_when_the_output_saturates():
    net = Network([1, 1])
    net.set_params([(np.array([[1000.0]]), np.zeros((1, 1)))])
    cost, grads = net.loss_and_gradients(np.array([[1.0], [-1.0]]), np.array([0, 1]))
    assert cost == pytest.approx(1000.0)  # log(1 + e^1000) ~ 1000 for each wrong sample
    assert all(np.isfinite(dW).all() for dW, _ in grads)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_shapes_and_dtypes(dtype):
    net = Network([6, 5, 4, 3], activation="relu", output="softmax", init="he", dtype=dtype)
    assert [(W.shape, b.shape) for W, b in net.params] == [((5, 6), (5, 1)), ((4, 5), (4, 1)),
                                                          ((3, 4), (3, 1))]
    assert all(W.dtype == dtype and b.dtype == dtype for W, b in net.params)
    X, Y = np.random.default_rng(0).uniform(size=(7, 6)), np.array([0, 1, 2, 0, 1, 2, 0])
    assert [A.shape for A in net.forward(X)] == [(5, 7), (4, 7), (3, 7)]
    proba = net.predict_proba(X)
    assert proba.shape == (7, 3) and proba.dtype == dtype
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert net.predict(X).shape == (7,)
    cost, grads = net.loss_and_gradients(X, Y)
    assert isinstance(cost, float)
    assert [(dW.shape, db.shape, dW.dtype) for dW, db in grads] == [
        (W.shape, b.shape, np.dtype(dtype)) for W, b in net.params]
    assert net.n_layers == 3 and net.n_classes == 3 and net.n_parameters() == 35 + 24 + 15


def test_sigmoid_output_probabilities_and_predictions():
    net = Network([3, 4, 1], seed=2)
    X = np.random.default_rng(1).uniform(size=(5, 3))
    proba = net.predict_proba(X)
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(net.predict(X), (proba[:, 1] > 0.5).astype(int))


def test_seed_init_is_the_tutorials_and_copy_is_independent():
    net = Network([4, 3, 1], seed=1)
    rng = np.random.RandomState(1)
    np.testing.assert_array_equal(net.params[0][0], rng.randn(3, 4) / np.sqrt(4))
    twin = net.copy()
    twin.set_params([(W * 0, b) for W, b in twin.params])
    assert np.abs(net.params[0][0]).sum() > 0


def test_evaluate_does_not_disturb_gradients_buffers():
    net = Network([3, 4, 1])
    X, Y = np.random.default_rng(2).uniform(size=(6, 3)), np.array([0, 1, 1, 0, 1, 0])
    _, before = net.loss_and_gradients(X, Y)
    before = [(dW.copy(), db.copy()) for dW, db in before]
    net.evaluate(X[:4], Y[:4])
    _, after = net.loss_and_gradients(X, Y)
    for (a, _), (b, _) in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, field", [
    ({"sizes": []}, "sizes"),
    ({"sizes": [784]}, "sizes"),
    ({"sizes": [784, 0, 1]}, "sizes"),
    ({"sizes": [784, -3, 1]}, "sizes"),
    ({"sizes": ["a", "b"]}, "sizes"),
    ({"sizes": [4, 2], "output": "sigmoid"}, "sizes"),
    ({"sizes": [4, 1], "output": "softmax"}, "sizes"),
    ({"sizes": [4, 1], "activation": "swish"}, "activation"),
    ({"sizes": [4, 1], "init": "zeros"}, "init"),
    ({"sizes": [4, 1], "dtype": "float16"}, "dtype"),
    ({"sizes": [4, 1], "seed": -1}, "seed"),
    ({"sizes": [4, 1], "seed": 1.5}, "seed"),
])
def test_bad_network_settings_name_the_field(kwargs, field):
    with pytest.raises(InputError) as caught:
        Network(**kwargs)
    assert caught.value.field == field and caught.value.message


def test_bad_data_names_the_field():
    net = Network([3, 2, 1])
    X = np.zeros((4, 3))
    cases = [
        (lambda: net.loss_and_gradients(X, np.zeros(5, dtype=int)), "Y", "match X"),
        (lambda: net.loss_and_gradients(np.zeros((4, 5)), np.zeros(4, dtype=int)), "X", "shape"),
        (lambda: net.loss_and_gradients(np.zeros((0, 3)), np.zeros(0, dtype=int)), "X", "no samples"),
        (lambda: net.loss_and_gradients(X, np.array([0, 1, 2, 0])), "Y", "0..1"),
        (lambda: net.loss_and_gradients(X, np.array([0, -1, 1, 0])), "Y", "0..1"),
        (lambda: net.loss_and_gradients(X, np.array([0, 0.5, 1, 0])), "Y", "whole"),
        (lambda: net.evaluate(X, np.zeros(3, dtype=int)), "Y", "match X"),
        (lambda: net.set_params([(np.zeros((2, 3)), np.zeros((2, 1)))]), "params", "2 layers"),
        (lambda: net.set_params([(np.zeros((3, 3)), np.zeros((2, 1))), (np.zeros((1, 2)),
                                                                       np.zeros((1, 1)))]),
         "params", "layer 1"),
    ]
    for call, field, words in cases:
        with pytest.raises(InputError) as caught:
            call()
        assert caught.value.field == field and words in caught.value.message, caught.value
