"""The cost's curvature: exact Hessian-vector products, the top Hessian eigenvalues and its trace.

`HessianOperator` multiplies the Hessian of the cost that `Network.loss_and_gradients` computes
(the mean over the samples, plus the L2 and L1 penalties) by a vector, exactly, with Pearlmutter's
R-operator (forward-over-reverse, "Fast exact multiplication by the Hessian", 1994): one pass
forward carries R(Z) = d/dr Z(θ + r v) at r = 0 through the layers, one pass backward carries
R(dZ), R(dW), R(db). Everything that does not depend on v (the activations, f'(Z), f''(Z) dA, the
backpropagated dZ) is computed once when the operator is built, so each product costs about as
much as one gradient. Vectors are lists of (vW, vb) shaped like the network's parameters.

Penalties: L2 (λ/2 Σ ||W||²) adds λ vW; L1 (λ Σ |W|) adds nothing: its gradient λ sign(W) is
constant wherever W != 0, so its Hessian is 0 there (at W = 0 exactly it has none). ReLU and leaky
ReLU have f'' = 0 away from their kink, likewise.

The top eigenvalues come from Lanczos with full reorthogonalization that stops as soon as every
wanted Ritz pair's residual ||Hv - θv|| is below tol·|θ| (a bound on each eigenvalue's error); the
trace from Hutchinson's estimator with Rademacher vectors. Both work on a fixed, seeded sample of
at most `max_samples` samples, so one measurement's cost is bounded whatever the data set's size.
All arithmetic is in float64, whatever the network's dtype.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .activations import ACTIVATIONS, BACKWARD, SECOND_DERIVATIVE, sigmoid, softmax
from .errors import InputError
from .parallel import chunk_bounds, map_chunks

SAMPLES = 1000  # default sample for one measurement: see benchmarks/bench_curvature.py for its cost
MAX_LANCZOS = 200  # Lanczos steps at most (each one Hessian-vector product)


def fixed_sample(n_total, max_samples=SAMPLES, seed=0):
    """Sorted indices of a seeded subset of at most `max_samples` of `n_total` samples (all of
    them when there are no more); the same arguments always give the same subset."""
    n_total = int(n_total)
    if max_samples is None or n_total <= max_samples:
        return np.arange(n_total)
    if int(max_samples) < 1:
        raise InputError("max_samples", f"must be at least 1, got {max_samples!r}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=int(max_samples), replace=False))


def sample_of(X, Y, max_samples=SAMPLES, seed=0):
    """(X, Y) restricted to `fixed_sample` of their rows."""
    index = fixed_sample(len(X), max_samples, seed)
    if len(index) == len(X):
        return X, Y
    return np.asarray(X)[index], np.asarray(Y)[index]


class LayerPass:
    """What a chunk of samples keeps from one forward and backward pass at the current parameters:
    A[l] for l = 0..L (A[0] = X.T), and for the layers 1..L: dZ[l] (already divided by the whole
    sample's n, as the engine's), f'(Z[l]) and f''(Z[l]) dA[l] (hidden layers; None where f'' = 0)."""

    def __init__(self, params, activation, output, X, Y, n, second=True):
        act = ACTIVATIONS[activation]
        L = len(params)
        A = [X.T]
        for l, (W, b) in enumerate(params, start=1):
            Z = W @ A[-1]
            Z += b
            if l < L:
                A.append(act(Z, out=Z))
            elif output == "sigmoid":
                A.append(sigmoid(Z, out=Z))
            elif output == "softmax":
                A.append(softmax(Z))
            else:
                A.append(Z)
        dZ = A[L].copy()  # (A - Y) / n for every output and its cost
        if output == "sigmoid":
            dZ -= Y
        elif output == "linear":
            dZ -= Y.T
        else:
            dZ[Y, np.arange(Y.shape[0])] -= 1.0
        dZ /= n
        self.A = A
        self.dZ = [None] * (L + 1)
        self.dZ[L] = dZ
        self.slope = [None] * L  # f'(Z[l]) for the hidden layers
        self.curve = [None] * L  # f''(Z[l]) * dA[l], or None
        backward, second_derivative = BACKWARD[activation], SECOND_DERIVATIVE[activation]
        for l in range(L, 1, -1):
            dA = params[l - 1][0].T @ self.dZ[l]
            slope = backward(A[l - 1], np.ones_like(dA))
            self.dZ[l - 1] = slope * dA
            if second:
                self.slope[l - 1] = slope
                f2 = second_derivative(A[l - 1])
                self.curve[l - 1] = None if f2 is None else f2 * dA


class HessianOperator:
    """H v for the cost of `network` on (X, Y) with the penalties, at the network's parameters now.

    Built once per parameter set (one forward and backward pass, in float64, in chunks on the
    engine's thread pool for large samples); each `matvec` is then one R-forward and one R-backward
    pass. `flat_matvec` works on flat vectors in the order of `flatten`: each layer's W
    (row-major) then its b.
    """

    def __init__(self, network, X, Y, l2=0.0, l1=0.0, params=None):
        """`params` (shaped like network.params) stands in for the network's own, e.g. a trainer's
        snapshot taken under its lock."""
        X = network.check_inputs(X)
        Y = network.check_labels(Y, X.shape[0])
        self.activation, self.output = network.activation, network.output
        params = network.params if params is None else params
        if [(np.shape(W), np.shape(b)) for W, b in params] != [(W.shape, b.shape) for W, b in network.params]:
            raise InputError("params", "must have the network's layers and shapes")
        self.params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params]
        self.shapes = [(W.shape, b.shape) for W, b in self.params]
        self.dim = sum(W.size + b.size for W, b in self.params)
        self.l2, self.l1 = float(l2), float(l1)
        X = np.asarray(X, np.float64)
        if self.output == "linear":
            Y = np.asarray(Y, np.float64)
        self.n = X.shape[0]
        bounds = chunk_bounds(self.n) or [(0, self.n)]
        self._bounds = bounds

        def build(part):
            start, stop = bounds[part]
            return LayerPass(self.params, self.activation, self.output, X[start:stop], Y[start:stop], self.n)

        self._passes = [build(0)] if len(bounds) == 1 else map_chunks(build, len(bounds))
        self.products = 0  # Hessian-vector products computed so far

    # -- vectors -------------------------------------------------------------------------
    def flatten(self, pairs):
        return np.concatenate([np.ravel(a) for pair in pairs for a in pair])

    def unflatten(self, flat):
        pairs, start = [], 0
        for shape_W, shape_b in self.shapes:
            sizes = (int(np.prod(shape_W)), int(np.prod(shape_b)))
            W = flat[start:start + sizes[0]].reshape(shape_W)
            b = flat[start + sizes[0]:start + sizes[0] + sizes[1]].reshape(shape_b)
            pairs.append((W, b))
            start += sum(sizes)
        return pairs

    # -- products ------------------------------------------------------------------------
    def matvec(self, vector):
        """H v as [(HvW, Hvb)] per layer, for v = [(vW, vb)] per layer."""
        if len(vector) != len(self.params):
            raise InputError("vector", f"expected {len(self.params)} layers, got {len(vector)}")
        v = []
        for l, ((vW, vb), (shape_W, shape_b)) in enumerate(zip(vector, self.shapes, strict=True), start=1):
            vW, vb = np.asarray(vW, np.float64), np.asarray(vb, np.float64)
            if vW.shape != shape_W or vb.shape != shape_b:
                raise InputError("vector", f"layer {l}: expected vW{shape_W} and vb{shape_b}, "
                                           f"got vW{vW.shape} and vb{vb.shape}")
            v.append((vW, vb))
        if len(self._passes) == 1:
            result = self._chunk_product(self._passes[0], v)
        else:
            parts = map_chunks(lambda part: self._chunk_product(self._passes[part], v), len(self._passes))
            result = parts[0]
            for more in parts[1:]:  # in chunk order: the same sums every time
                for (HW, Hb), (more_W, more_b) in zip(result, more, strict=True):
                    HW += more_W
                    Hb += more_b
        if self.l2:
            for (HW, _), (vW, _) in zip(result, v, strict=True):
                HW += self.l2 * vW
        self.products += 1
        return result

    def flat_matvec(self, flat):
        return self.flatten(self.matvec(self.unflatten(np.asarray(flat, np.float64))))

    def _chunk_product(self, state, v):
        params, A, L = self.params, state.A, len(self.params)
        RZ = [None] * (L + 1)
        RA = [None] * (L + 1)  # R(A[0]) = 0: the inputs do not depend on the parameters
        for l in range(1, L + 1):
            W = params[l - 1][0]
            vW, vb = v[l - 1]
            Z = vW @ A[l - 1]
            Z += vb
            if RA[l - 1] is not None:
                Z += W @ RA[l - 1]
            RZ[l] = Z
            if l < L:
                RA[l] = state.slope[l] * Z
        out = A[L]
        if self.output == "sigmoid":
            RdZ = out * (1.0 - out) * RZ[L]
        elif self.output == "softmax":
            weighted = out * RZ[L]
            RdZ = weighted - out * weighted.sum(axis=0, keepdims=True)
        else:
            RdZ = RZ[L].copy()
        RdZ /= self.n
        result = [None] * L
        for l in range(L, 0, -1):
            RdW = RdZ @ A[l - 1].T
            if RA[l - 1] is not None:
                RdW += state.dZ[l] @ RA[l - 1].T
            result[l - 1] = (RdW, RdZ.sum(axis=1, keepdims=True))
            if l > 1:
                W, vW = params[l - 1][0], v[l - 1][0]
                RdA = W.T @ RdZ
                RdA += vW.T @ state.dZ[l]
                RdZ = state.slope[l - 1] * RdA
                if state.curve[l - 1] is not None:
                    RdZ += state.curve[l - 1] * RZ[l - 1]
        return result


def dense_hessian(operator):
    """The whole (P, P) Hessian, column by column from P products: for small networks and tests."""
    columns = np.empty((operator.dim, operator.dim))
    unit = np.zeros(operator.dim)
    for j in range(operator.dim):
        unit[j] = 1.0
        columns[:, j] = operator.flat_matvec(unit)
        unit[j] = 0.0
    return columns


@dataclass(frozen=True)
class Eigen:
    """Lanczos's answer: the top-k eigenvalues, largest first, their unit eigenvectors (columns),
    each Ritz pair's residual ||H v - θ v|| (a bound on that eigenvalue's error), the steps taken
    and whether every residual met the tolerance."""

    values: np.ndarray
    vectors: np.ndarray = field(repr=False)
    residuals: np.ndarray
    steps: int
    converged: bool


def lanczos(matvec, dim, k=1, v0=None, tol=1e-4, max_steps=MAX_LANCZOS, seed=0, min_steps=1):
    """The k largest (algebraic) eigenvalues of the symmetric operator `matvec` on R^dim.

    Lanczos with full reorthogonalization (twice, classical Gram-Schmidt), from `v0` (e.g. the
    last measurement's top eigenvector: a warm start) or a seeded random vector. Stops when each of
    the top k Ritz values θ has residual |β_m s_m| <= tol·max(|θ|, tiny), after at least min_steps,
    or after max_steps. A small residual says θ is close to *an* eigenvalue; that it is the top one
    needs the start vector to hold some of the top eigenvector (a random one does; for a warm start
    mix in a random part and take a few steps, as SharpnessTracker does). An invariant subspace
    found early is left for a fresh random direction, so a tiny operator ends with its exact
    eigenvalues after `dim` steps.
    """
    k = int(k)
    if not 1 <= k <= dim:
        raise InputError("k", f"must be from 1 to the number of parameters ({dim}), got {k}")
    rng = np.random.default_rng(seed)
    steps_max = min(int(max_steps), dim)
    Q = np.empty((min(steps_max + 1, 32), dim))  # grows by doubling: most runs take few steps
    q = rng.standard_normal(dim) if v0 is None else np.array(v0, dtype=np.float64).ravel()
    if q.shape != (dim,) or not np.isfinite(q).all() or not np.linalg.norm(q) > 0:
        q = rng.standard_normal(dim)
    Q[0] = q / np.linalg.norm(q)
    alphas, betas = [], []
    values = vectors_small = residuals = None
    m = 0
    for j in range(steps_max):
        w = np.asarray(matvec(Q[j]), dtype=np.float64)
        if not np.isfinite(w).all():
            raise InputError("parameters", "the Hessian-vector product is not finite (NaN or Inf): "
                                           "the parameters or the cost have diverged")
        alphas.append(float(w @ Q[j]))
        basis = Q[:j + 1]
        for _ in range(2):
            w -= basis.T @ (basis @ w)
        beta = float(np.linalg.norm(w))
        m = j + 1
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta, S = np.linalg.eigh(T)
        top = np.argsort(theta)[::-1][:k]
        values, vectors_small = theta[top], S[:, top]
        residuals = np.abs(beta * S[-1, top])
        scale = np.maximum(np.abs(values), np.finfo(np.float64).tiny)
        if m >= max(k, min(int(min_steps), steps_max)) and np.all(residuals <= tol * scale):
            break
        if m == steps_max:
            break
        if j + 1 == len(Q):
            Q = np.concatenate([Q, np.empty((min(len(Q), steps_max + 1 - len(Q)), dim))])
        if beta <= 1e-12 * max(np.abs(theta).max(), 1e-300):  # invariant subspace: a new direction
            w = rng.standard_normal(dim)
            for _ in range(2):
                w -= basis.T @ (basis @ w)
            betas.append(0.0)
            Q[j + 1] = w / np.linalg.norm(w)
        else:
            betas.append(beta)
            Q[j + 1] = w / beta
    vectors = Q[:m].T @ vectors_small
    scale = np.maximum(np.abs(values), np.finfo(np.float64).tiny)
    return Eigen(values=values, vectors=vectors, residuals=residuals, steps=m,
                 converged=bool(len(values) == k and np.all(residuals <= tol * scale)))


def hutchinson_trace(matvec, dim, probes=16, seed=0):
    """(estimate, standard error) of tr(H): the mean of z^T H z over Rademacher vectors z, and the
    standard deviation of those values over sqrt(probes) (None with a single probe)."""
    probes = int(probes)
    if probes < 1:
        raise InputError("trace_probes", f"must be at least 1, got {probes}")
    rng = np.random.default_rng(seed)
    values = np.empty(probes)
    for i in range(probes):
        z = rng.integers(0, 2, size=dim).astype(np.float64) * 2.0 - 1.0
        values[i] = z @ matvec(z)
    error = float(values.std(ddof=1) / np.sqrt(probes)) if probes > 1 else None
    return float(values.mean()), error


@dataclass(frozen=True)
class Curvature:
    """One measurement of the Hessian of the cost on a fixed sample."""

    eigenvalues: tuple  # the top-k eigenvalues, largest first; eigenvalues[0] is the sharpness
    residuals: tuple  # ||H v - λ v|| of each: a bound on each eigenvalue's error
    converged: bool  # every residual met the tolerance
    trace: float | None  # Hutchinson's estimate of tr(H) (None when no probes were asked for)
    trace_error: float | None  # its standard error
    trace_probes: int
    samples: int  # samples the cost was taken over
    parameters: int
    products: int  # Hessian-vector products computed
    seconds: float
    vectors: np.ndarray | None = field(default=None, repr=False, compare=False)  # (P, k), flat

    @property
    def sharpness(self):
        return self.eigenvalues[0]

    def to_dict(self):
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "vectors"}


def measure_curvature(network, X, Y, l2=0.0, l1=0.0, k=3, trace_probes=16, max_samples=SAMPLES,
                      seed=0, tol=1e-4, v0=None, params=None):
    """The top-k Hessian eigenvalues and (with trace_probes > 0) the trace, on `fixed_sample`."""
    started = time.perf_counter()
    X, Y = sample_of(X, Y, max_samples, seed)
    operator = HessianOperator(network, X, Y, l2=l2, l1=l1, params=params)
    k = min(int(k), operator.dim)
    eigen = lanczos(operator.flat_matvec, operator.dim, k=k, v0=v0, tol=tol, seed=seed)
    trace = error = None
    if trace_probes:
        trace, error = hutchinson_trace(operator.flat_matvec, operator.dim, trace_probes, seed=seed + 1)
    return Curvature(eigenvalues=tuple(map(float, eigen.values)),
                     residuals=tuple(map(float, eigen.residuals)), converged=eigen.converged,
                     trace=trace, trace_error=error, trace_probes=int(trace_probes),
                     samples=operator.n, parameters=operator.dim, products=operator.products,
                     seconds=time.perf_counter() - started, vectors=eigen.vectors)
