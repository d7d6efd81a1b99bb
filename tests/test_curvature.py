"""Hessian-vector products, the top eigenvalues and the trace of the Hessian (backprop.curvature).

Products agree with PyTorch's double-backward `torch.autograd.functional.hvp` on the same arrays
(float64, to 1e-10 relative; skipped without torch) and with central differences of the engine's
own gradients; Lanczos agrees with NumPy's eigvalsh of the dense Hessian built from products.
"""

import itertools

import numpy as np
import pytest

from backprop.activations import ACTIVATIONS, SECOND_DERIVATIVE
from backprop.curvature import (
    HessianOperator,
    dense_hessian,
    fixed_sample,
    hutchinson_trace,
    lanczos,
    measure_curvature,
    sample_of,
)
from backprop.errors import InputError
from backprop.gradcheck import relative_error
from backprop.network import OUTPUTS, Network


def problem(n_layers, activation, output, seed, n_samples=9):
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(3, 6))
    hidden = [int(h) for h in rng.integers(2, 5, size=n_layers - 1)]
    n_out = 1 if output == "sigmoid" else int(rng.integers(2, 4))
    net = Network([n_in, *hidden, n_out], activation=activation, output=output, init="xavier", seed=seed)
    # Non-zero biases keep ReLU units off their kink; weights away from 0 keep L1 differentiable.
    net.set_params([(W + 0.1 * np.sign(W), rng.uniform(-0.5, 0.5, size=b.shape)) for W, b in net.params])
    X = rng.uniform(-1, 1, size=(n_samples, n_in))
    Y = rng.normal(size=(n_samples, n_out)) if output == "linear" else \
        rng.integers(0, net.n_classes, size=n_samples)
    return net, X, Y


def random_vector(net, seed):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(W.shape), rng.standard_normal(b.shape)) for W, b in net.params]


def flat(pairs):
    return np.concatenate([np.ravel(a) for pair in pairs for a in pair])


CASES = list(itertools.product(ACTIVATIONS, OUTPUTS, [1, 2, 3]))
PENALTIES = [(0.0, 0.0), (0.3, 0.0), (0.0, 0.2), (0.1, 0.05)]


def penalties_of(case):
    return PENALTIES[CASES.index(case) % len(PENALTIES)]


# -- the products ------------------------------------------------------------------------

def torch_hvp(net, X, Y, v, l2, l1):
    """H v from PyTorch's autograd (double backward) for the engine's cost on the same arrays."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
           "leaky_relu": lambda z: F.leaky_relu(z, 0.01), "linear": lambda z: z}[net.activation]
    A0 = torch.tensor(X.T, dtype=torch.float64)
    n = X.shape[0]

    def cost(*theta):
        A = A0
        Ws = theta[0::2]
        for l, (W, b) in enumerate(zip(Ws, theta[1::2], strict=True), start=1):
            Z = W @ A + b
            A = act(Z) if l < len(Ws) else Z
        if net.output == "sigmoid":
            J = F.binary_cross_entropy_with_logits(A[0], torch.tensor(Y, dtype=torch.float64))
        elif net.output == "softmax":
            J = F.cross_entropy(A.T, torch.tensor(Y))
        else:
            J = 0.5 * ((A - torch.tensor(Y.T, dtype=torch.float64)) ** 2).sum() / n
        return J + 0.5 * l2 * sum((W * W).sum() for W in Ws) + l1 * sum(W.abs().sum() for W in Ws)

    theta = tuple(torch.tensor(a, dtype=torch.float64) for pair in net.params for a in pair)
    vector = tuple(torch.tensor(a, dtype=torch.float64) for pair in v for a in pair)
    _, product = torch.autograd.functional.hvp(cost, theta, vector)
    return np.concatenate([p.numpy().ravel() for p in product])


@pytest.mark.parametrize("activation, output, n_layers", CASES)
def test_products_match_torch_double_backward(activation, output, n_layers):
    seed = CASES.index((activation, output, n_layers))
    l2, l1 = penalties_of((activation, output, n_layers))
    net, X, Y = problem(n_layers, activation, output, seed)
    v = random_vector(net, seed + 100)
    ours = flat(HessianOperator(net, X, Y, l2=l2, l1=l1).matvec(v))
    theirs = torch_hvp(net, X, Y, v, l2, l1)
    assert np.linalg.norm(ours - theirs) <= 1e-10 * np.linalg.norm(theirs), (activation, output, n_layers)


@pytest.mark.parametrize("activation, output, n_layers", CASES)
def test_products_match_differences_of_the_engines_gradients(activation, output, n_layers):
    seed = CASES.index((activation, output, n_layers))
    l2, l1 = penalties_of((activation, output, n_layers))
    net, X, Y = problem(n_layers, activation, output, seed)
    v = random_vector(net, seed + 100)
    ours = flat(HessianOperator(net, X, Y, l2=l2, l1=l1).matvec(v))
    eps = 1e-5
    grads = []
    for sign in (1, -1):
        moved = net.copy()
        moved.set_params([(W + sign * eps * vW, b + sign * eps * vb)
                          for (W, b), (vW, vb) in zip(net.params, v, strict=True)])
        grads.append(flat(moved.loss_and_gradients(X, Y, l2=l2, l1=l1)[1]))
    numeric = (grads[0] - grads[1]) / (2 * eps)
    assert np.linalg.norm(ours - numeric) <= 1e-5 * np.linalg.norm(numeric), (activation, output, n_layers)


def test_products_are_linear_and_symmetric():
    net, X, Y = problem(3, "tanh", "softmax", seed=4)
    op = HessianOperator(net, X, Y, l2=0.1)
    a, b = flat(random_vector(net, 1)), flat(random_vector(net, 2))
    Ha, Hb = op.flat_matvec(a), op.flat_matvec(b)
    assert np.allclose(op.flat_matvec(2 * a - 3 * b), 2 * Ha - 3 * Hb, rtol=1e-12, atol=1e-12)
    assert abs(a @ Hb - b @ Ha) <= 1e-12 * abs(a @ Hb)
    assert op.products == 3


def test_l1_adds_no_curvature_away_from_zero():
    net, X, Y = problem(2, "sigmoid", "sigmoid", seed=8)
    v = random_vector(net, 3)
    plain = flat(HessianOperator(net, X, Y).matvec(v))
    assert np.array_equal(flat(HessianOperator(net, X, Y, l1=0.5).matvec(v)), plain)
    with_l2 = flat(HessianOperator(net, X, Y, l2=0.5).matvec(v))
    only_W = flat([(vW, np.zeros_like(vb)) for vW, vb in v])
    assert np.allclose(with_l2 - plain, 0.5 * only_W, rtol=1e-12, atol=1e-14)


def test_float32_networks_are_measured_in_float64():
    net64, X, Y = problem(2, "tanh", "softmax", seed=6)
    net32 = Network(**{**net64.config(), "dtype": "float32"})
    net32.set_params(net64.params)
    v = random_vector(net64, 1)
    product32 = flat(HessianOperator(net32, X.astype(np.float32), Y).matvec(v))
    assert product32.dtype == np.float64
    product64 = flat(HessianOperator(net64, X, Y).matvec(v))
    assert relative_error(product32, product64) < 1e-6  # the float32 parameters were rounded


def test_chunked_products_equal_one_piece(monkeypatch):
    """Large samples are split over the engine's thread pool; the sums are the same."""
    net, X, Y = problem(2, "relu", "softmax", seed=2, n_samples=1500)
    v = random_vector(net, 5)
    monkeypatch.setenv("BACKPROP_ENGINE_THREADS", "1")
    whole = flat(HessianOperator(net, X, Y, l2=0.01).matvec(v))
    monkeypatch.setenv("BACKPROP_ENGINE_THREADS", "3")
    op = HessianOperator(net, X, Y, l2=0.01)
    assert len(op._passes) > 1
    assert relative_error(flat(op.matvec(v)), whole) < 1e-13


def test_every_activation_has_a_second_derivative():
    assert set(SECOND_DERIVATIVE) == set(ACTIVATIONS)
    z = np.linspace(-3, 3, 13)
    h = 1e-5
    for name, f in ACTIVATIONS.items():
        second = SECOND_DERIVATIVE[name](f(z))
        numeric = (f(z + h) - 2 * f(z) + f(z - h)) / h**2
        expected = np.zeros_like(z) if second is None else second
        keep = np.abs(z) > 1e-3  # not across a kink
        assert np.allclose(expected[keep], numeric[keep], atol=1e-4), name


def test_a_wrong_vector_is_refused():
    net, X, Y = problem(2, "tanh", "sigmoid", seed=1)
    op = HessianOperator(net, X, Y)
    with pytest.raises(InputError, match="layer 1"):
        op.matvec([(np.zeros((1, 1)), np.zeros((1, 1)))] + random_vector(net, 0)[1:])
    with pytest.raises(InputError, match="layers"):
        op.matvec(random_vector(net, 0)[:1])


# -- eigenvalues and trace ---------------------------------------------------------------

@pytest.mark.parametrize("activation, output", [("tanh", "softmax"), ("sigmoid", "sigmoid"),
                                                ("relu", "linear"), ("leaky_relu", "softmax")])
def test_top_eigenvalues_equal_those_of_the_dense_hessian(activation, output):
    net, X, Y = problem(3, activation, output, seed=12, n_samples=30)
    op = HessianOperator(net, X, Y, l2=0.01)
    H = dense_hessian(op)
    assert np.allclose(H, H.T, rtol=0, atol=1e-12 * np.abs(H).max())
    exact = np.linalg.eigvalsh((H + H.T) / 2)[::-1]
    result = measure_curvature(net, X, Y, l2=0.01, k=3, trace_probes=0, tol=1e-10)
    assert result.converged and result.samples == 30 and result.parameters == op.dim
    assert np.allclose(result.eigenvalues, exact[:3], rtol=1e-6, atol=0), (result.eigenvalues, exact[:3])
    top = result.vectors[:, 0]
    assert relative_error(op.flat_matvec(top), exact[0] * top) < 1e-6


def test_lanczos_is_exact_on_a_tiny_operator_and_warm_starts_converge_faster():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    eigenvalues = np.concatenate([[9.0, 5.0, 4.0], rng.uniform(-1, 2, size=37)])
    M = Q @ np.diag(eigenvalues) @ Q.T
    cold = lanczos(lambda x: M @ x, 40, k=3, tol=1e-12)
    assert np.allclose(cold.values, [9.0, 5.0, 4.0], rtol=1e-10)
    warm = lanczos(lambda x: M @ x, 40, k=1, v0=Q[:, 0] + 1e-3 * rng.standard_normal(40), tol=1e-8)
    assert warm.converged and warm.steps < cold.steps
    everything = lanczos(lambda x: M @ x, 40, k=40, tol=1e-12)
    assert np.allclose(np.sort(everything.values), np.sort(eigenvalues), atol=1e-10)


def test_hutchinson_trace_within_its_standard_error():
    net, X, Y = problem(2, "tanh", "softmax", seed=3, n_samples=40)
    op = HessianOperator(net, X, Y)
    exact = np.trace(dense_hessian(op))
    misses = 0
    for seed in range(20):
        estimate, error = hutchinson_trace(op.flat_matvec, op.dim, probes=30, seed=seed)
        assert error > 0
        misses += abs(estimate - exact) > 2 * error
    assert misses <= 4  # about 5% of estimates lie beyond 2 standard errors
    result = measure_curvature(net, X, Y, k=1, trace_probes=64)
    assert abs(result.trace - exact) <= 4 * result.trace_error
    assert result.trace_probes == 64 and result.products > 64 and result.seconds > 0


def test_the_sample_is_fixed_and_bounded():
    a = fixed_sample(10_000, 500, seed=3)
    assert len(a) == 500 and np.array_equal(a, fixed_sample(10_000, 500, seed=3))
    assert np.all(np.diff(a) > 0)
    assert not np.array_equal(a, fixed_sample(10_000, 500, seed=4))
    assert np.array_equal(fixed_sample(300, 500), np.arange(300))
    X, Y = np.arange(20.0).reshape(10, 2), np.arange(10)
    Xs, Ys = sample_of(X, Y, max_samples=4, seed=0)
    assert Xs.shape == (4, 2) and np.array_equal(Xs[:, 0] / 2, Ys)
    with pytest.raises(InputError):
        fixed_sample(100, 0)
    net, X, Y = problem(2, "tanh", "sigmoid", seed=1, n_samples=50)
    assert measure_curvature(net, X, Y, k=1, trace_probes=0, max_samples=20).samples == 20
