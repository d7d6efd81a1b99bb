"""Per-example gradient norms and the gradient noise scale B_simple (backprop.noise_scale).

Per-example squared norms agree with PyTorch's per-sample gradients (torch.func vmap + grad, float64,
to 1e-10 relative; skipped without torch) and with one engine gradient per example; the estimators
of tr(Σ) and |G|² are those of McCandlish et al. (2018), unbiased over repeated batches.
"""

import itertools

import numpy as np
import pytest

from backprop.activations import ACTIVATIONS
from backprop.network import OUTPUTS, Network
from backprop.noise_scale import gradient_noise_scale, noise_scale_reading, per_example_gradient_norms


def problem(n_layers, activation, output, seed, n_samples=12):
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(3, 6))
    hidden = [int(h) for h in rng.integers(2, 5, size=n_layers - 1)]
    n_out = 1 if output == "sigmoid" else int(rng.integers(2, 4))
    net = Network([n_in, *hidden, n_out], activation=activation, output=output, init="xavier", seed=seed)
    net.set_params([(W, rng.uniform(-0.5, 0.5, size=b.shape)) for W, b in net.params])
    X = rng.uniform(-1, 1, size=(n_samples, n_in))
    Y = rng.normal(size=(n_samples, n_out)) if output == "linear" else \
        rng.integers(0, net.n_classes, size=n_samples)
    return net, X, Y


def example_gradients(net, X, Y):
    """(n, P): each example's own gradient, one engine call per example."""
    rows = []
    for i in range(len(X)):
        _, grads = net.loss_and_gradients(X[i:i + 1], Y[i:i + 1])
        rows.append(np.concatenate([np.ravel(a) for pair in grads for a in pair]))
    return np.array(rows)


CASES = list(itertools.product(ACTIVATIONS, OUTPUTS, [1, 2, 3]))


@pytest.mark.parametrize("activation, output, n_layers", CASES)
def test_per_example_norms_match_torch_func(activation, output, n_layers):
    torch = pytest.importorskip("torch")
    from torch.func import grad, vmap
    F = torch.nn.functional
    net, X, Y = problem(n_layers, activation, output, seed=CASES.index((activation, output, n_layers)))
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
           "leaky_relu": lambda z: F.leaky_relu(z, 0.01), "linear": lambda z: z}[activation]

    def cost(theta, x, y):
        a = x
        for l in range(0, len(theta), 2):
            z = theta[l] @ a + theta[l + 1][:, 0]
            a = act(z) if l + 2 < len(theta) else z
        if output == "sigmoid":
            return F.binary_cross_entropy_with_logits(a[0], y)
        if output == "softmax":
            return torch.logsumexp(a, 0) - (a * y).sum()
        return 0.5 * ((a - y) ** 2).sum()

    theta = tuple(torch.tensor(a, dtype=torch.float64) for pair in net.params for a in pair)
    if output == "softmax":
        Yt = torch.tensor(np.eye(net.n_classes)[Y])
    else:
        Yt = torch.tensor(np.asarray(Y, dtype=np.float64))
    per_sample = vmap(grad(cost), in_dims=(None, 0, 0))(theta, torch.tensor(X), Yt)
    by_layer = np.stack([(per_sample[2 * l] ** 2).sum(dim=(1, 2)).numpy()
                         + (per_sample[2 * l + 1] ** 2).sum(dim=(1, 2)).numpy()
                         for l in range(net.n_layers)], axis=1)
    ours = per_example_gradient_norms(net, X, Y, by_layer=True)
    assert ours.shape == (len(X), net.n_layers)
    assert np.max(np.abs(ours - by_layer) / by_layer.sum(axis=1, keepdims=True)) <= 1e-10
    assert np.allclose(per_example_gradient_norms(net, X, Y), by_layer.sum(axis=1), rtol=1e-10, atol=0)


@pytest.mark.parametrize("activation, output", [("tanh", "softmax"), ("relu", "sigmoid"),
                                                ("sigmoid", "linear")])
def test_per_example_norms_match_one_engine_gradient_per_example(activation, output):
    net, X, Y = problem(3, activation, output, seed=7)
    expected = (example_gradients(net, X, Y) ** 2).sum(axis=1)
    assert np.allclose(per_example_gradient_norms(net, X, Y), expected, rtol=1e-12, atol=0)


def test_estimators_are_the_papers():
    """S is the per-example gradients' sample covariance trace, |G|² = |G_B|² - S/B."""
    net, X, Y = problem(2, "tanh", "softmax", seed=3, n_samples=40)
    g = example_gradients(net, X, Y)
    B = len(X)
    result = gradient_noise_scale(net, X, Y, max_samples=None)
    trace_sigma = np.trace(np.cov(g, rowvar=False, ddof=1))
    batch_sq = float(g.mean(axis=0) @ g.mean(axis=0))
    assert result.samples == B
    assert result.trace_sigma == pytest.approx(trace_sigma, rel=1e-10)
    assert result.batch_gradient_sq == pytest.approx(batch_sq, rel=1e-10)
    assert result.gradient_sq == pytest.approx(batch_sq - trace_sigma / B, rel=1e-10)
    assert result.b_simple == pytest.approx(trace_sigma / (batch_sq - trace_sigma / B), rel=1e-10)
    assert result.mean_example_sq == pytest.approx(float((g ** 2).sum(axis=1).mean()), rel=1e-10)


def test_penalties_move_the_gradient_not_the_noise():
    net, X, Y = problem(2, "tanh", "softmax", seed=3, n_samples=40)
    plain = gradient_noise_scale(net, X, Y, max_samples=None)
    penalised = gradient_noise_scale(net, X, Y, l2=0.2, l1=0.01, max_samples=None)
    assert penalised.trace_sigma == pytest.approx(plain.trace_sigma, rel=1e-12)
    full = net.loss_and_gradients(X, Y, l2=0.2, l1=0.01)[1]
    batch_sq = sum(float(np.vdot(dW, dW) + np.vdot(db, db)) for dW, db in full)
    assert penalised.batch_gradient_sq == pytest.approx(batch_sq, rel=1e-10)
    assert penalised.gradient_sq == pytest.approx(batch_sq - plain.trace_sigma / 40, rel=1e-10)


def test_estimates_are_unbiased_over_batches():
    """Batches of 8 drawn with replacement from a population: the estimates average to the
    population's tr(Σ) and |G|² (the plain |G_B|² would overshoot by tr(Σ)/8)."""
    net, X, Y = problem(2, "sigmoid", "sigmoid", seed=5, n_samples=400)
    g = example_gradients(net, X, Y)
    G = g.mean(axis=0)
    true_sq, true_trace = float(G @ G), float(((g - G) ** 2).sum(axis=1).mean())
    rng = np.random.default_rng(0)
    draws = [gradient_noise_scale(net, X[i], Y[i], max_samples=None)
             for i in (rng.integers(0, 400, size=8) for _ in range(3000))]
    traces = np.array([d.trace_sigma for d in draws])
    squares = np.array([d.gradient_sq for d in draws])
    plain = np.array([d.batch_gradient_sq for d in draws])
    for values, truth in ((traces, true_trace), (squares, true_sq)):
        assert abs(values.mean() - truth) <= 4 * values.std() / np.sqrt(len(values)), (values.mean(), truth)
    assert plain.mean() - true_sq > 4 * plain.std() / np.sqrt(len(plain))  # the naive one is biased


def test_the_sample_is_bounded_and_the_reading_names_both_batches():
    net, X, Y = problem(2, "tanh", "sigmoid", seed=2, n_samples=300)
    result = gradient_noise_scale(net, X, Y, batch_size=10, max_samples=100, seed=1)
    assert result.samples == 100 and result.batch_size == 10 and result.seconds > 0
    assert result.reading.startswith("critical batch ≈ ") and "yours: 10" in result.reading
    full = gradient_noise_scale(net, X, Y)
    assert full.batch_size == 300 and "(the full batch)" in full.reading
    assert result.to_dict()["b_simple"] == result.b_simple


def test_readings():
    assert noise_scale_reading(897.0, 10) == ("critical batch ≈ 900; yours: 10 — below it: larger batches "
                                              "would cut the steps needed almost in proportion (about the "
                                              "same samples in all)")
    assert "near it" in noise_scale_reading(40.0, 64)
    assert "above it" in noise_scale_reading(12.3, 11272, full_batch=True)
    assert noise_scale_reading(12.3).endswith("≈ 12")
    assert noise_scale_reading(3.42) == "critical batch ≈ 3.4"
    assert "not measurable" in noise_scale_reading(float("inf"), 10)
