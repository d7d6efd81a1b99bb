"""The engine's additions for the 2D tasks, checked like the rest: a linear (identity) hidden
activation, a linear output with squared error, and L1 regularisation; numerically, and against
PyTorch's autograd (a test-only dependency; that test skips without it)."""

import math

import numpy as np
import pytest

from backprop.data import load_task
from backprop.errors import InputError
from backprop.gradcheck import gradient_check
from backprop.network import Network


def _regression_batch(n_features=3, n_outputs=1, n=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    Y = rng.normal(size=(n,) if n_outputs == 1 else (n, n_outputs))
    return X, Y


def test_cost_of_a_linear_output_is_half_the_mean_squared_error():
    net = Network([2, 1], output="linear")
    net.set_params([(np.array([[2.0, -1.0]]), np.array([[0.5]]))])
    X, Y = np.array([[1.0, 1.0], [0.0, 2.0], [3.0, 0.0]]), np.array([1.0, -1.0, 5.0])
    predicted = [2 - 1 + 0.5, -2 + 0.5, 6 + 0.5]
    expected = sum((a - y) ** 2 for a, y in zip(predicted, Y, strict=True)) / (2 * 3)
    assert net.loss_and_gradients(X, Y)[0] == pytest.approx(expected, rel=1e-12)
    assert net.evaluate(X, Y)[0] == pytest.approx(expected, rel=1e-12)
    assert math.isnan(net.evaluate(X, Y)[1])  # no accuracy for numbers
    assert np.allclose(net.predict(X), predicted)


def test_identity_activation_keeps_a_deep_net_linear():
    net = Network([2, 4, 4, 1], activation="linear", output="linear", seed=3)
    X = np.random.default_rng(1).normal(size=(5, 2))
    A = X.T
    for W, b in net.params:
        A = W @ A + b
    assert np.allclose(net.predict(X), A[0])


@pytest.mark.parametrize("sizes, activation, l1, l2", [
    ([3, 5, 1], "linear", 0.0, 0.0),
    ([3, 5, 4, 1], "tanh", 0.0, 0.0),
    ([3, 6, 2], "sigmoid", 0.0, 0.0),  # two outputs: targets (n, 2)
    ([3, 5, 1], "tanh", 0.05, 0.0),
    ([3, 5, 4, 1], "linear", 0.02, 0.1),
])
def test_linear_output_and_l1_gradients_match_numeric_ones(sizes, activation, l1, l2):
    net = Network(sizes, activation=activation, output="linear", init="xavier", seed=2)
    X, Y = _regression_batch(sizes[0], sizes[-1])
    for row in gradient_check(net, X, Y, l2=l2, l1=l1):
        assert row["dW_error"] < 1e-7 and row["db_error"] < 1e-7, row


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_l1_and_identity_gradients_with_classification_outputs(output):
    sizes = [4, 6, 1] if output == "sigmoid" else [4, 6, 3]
    net = Network(sizes, activation="linear", output=output, seed=5)
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(8, 4)), rng.integers(0, 2 if output == "sigmoid" else 3, size=8)
    for row in gradient_check(net, X, Y, l1=0.03):
        assert row["dW_error"] < 1e-7 and row["db_error"] < 1e-7, row


def test_l1_adds_its_penalty_to_the_cost():
    net = Network([3, 4, 1], output="linear", seed=1)
    X, Y = _regression_batch()
    plain = net.loss_and_gradients(X, Y)[0]
    penalised = net.loss_and_gradients(X, Y, l1=0.1)[0]
    assert penalised - plain == pytest.approx(0.1 * sum(np.abs(W).sum() for W, _ in net.params))


@pytest.mark.parametrize("Y, message", [
    (np.zeros((9, 2)), "shape"), (np.array(["a"] * 9), "numbers"), (np.full(9, np.nan), "finite"),
])
def test_bad_regression_targets_name_the_field(Y, message):
    net = Network([3, 1], output="linear")
    with pytest.raises(InputError) as caught:
        net.loss_and_gradients(_regression_batch()[0], Y)
    assert caught.value.field == "Y" and message in caught.value.message


def test_a_linear_output_has_no_class_probabilities():
    with pytest.raises(InputError) as caught:
        Network([2, 1], output="linear").predict_proba(np.zeros((1, 2)))
    assert caught.value.field == "output"


def test_a_regression_task_trains_down():
    task = load_task("plane", digits=None, points=200, seed=1)
    net = Network([2, 4, 1], activation="tanh", output="linear", seed=1)
    start = net.evaluate(task.x_test, task.y_test)[0]
    for _ in range(300):
        _, grads = net.loss_and_gradients(task.x_train, task.y_train)
        net.params = [(W - 0.01 * dW, b - 0.01 * db)
                      for (W, b), (dW, db) in zip(net.params, grads, strict=True)]
    assert net.evaluate(task.x_test, task.y_test)[0] < start / 10


@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("output", ["linear", "sigmoid", "softmax"])
def test_cost_and_gradients_equal_pytorch_autograd(activation, output):
    torch = pytest.importorskip("torch")
    sizes = [7, 8, 8, 3 if output == "softmax" else 1]
    net = Network(sizes, activation=activation, output=output, init="xavier", seed=4)
    rng = np.random.default_rng(9)
    X = rng.normal(size=(25, 7))
    if output == "linear":
        Y = rng.normal(size=25)
    else:
        Y = rng.integers(0, sizes[-1] if output == "softmax" else 2, size=25)
    l1, l2 = 0.01, 0.03
    cost, grads = net.loss_and_gradients(X, Y, l2=l2, l1=l1)

    params = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
              for W, b in net.params]
    A = torch.tensor(X.T)
    act = {"linear": lambda z: z, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}
    for layer, (W, b) in enumerate(params, start=1):
        Z = W @ A + b
        A = act[activation](Z) if layer < len(params) else Z
    Z = A
    if output == "linear":
        J = 0.5 * ((Z[0] - torch.tensor(Y)) ** 2).mean()
    elif output == "sigmoid":
        J = torch.nn.functional.binary_cross_entropy_with_logits(Z[0], torch.tensor(Y, dtype=Z.dtype))
    else:
        J = torch.nn.functional.cross_entropy(Z.T, torch.tensor(Y))
    J = J + l2 / 2 * sum((W ** 2).sum() for W, _ in params) + l1 * sum(W.abs().sum() for W, _ in params)
    J.backward()

    assert cost == pytest.approx(J.item(), abs=1e-7, rel=1e-7)
    for (dW, db), (W, b) in zip(grads, params, strict=True):
        assert np.abs(dW - W.grad.numpy()).max() < 1e-7
        assert np.abs(db - b.grad.numpy()).max() < 1e-7
