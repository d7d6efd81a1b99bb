"""The gradient noise scale B_simple = tr(Σ) / |G|² (McCandlish, Kaplan, Amodei et al. 2018, "An
Empirical Model of Large-Batch Training"): roughly the batch size past which larger batches stop
cutting the number of steps a training run needs (the critical batch size).

Σ is the covariance of one example's gradient and G the true gradient. Both come from exact
per-example gradient norms, without ever forming a per-example matrix: example i's gradient of a
dense layer is dW_i = dz_i a_i^T and db_i = dz_i (dz_i its column of dZ before the batch's
averaging, a_i its input column), so ||dW_i||² + ||db_i||² = ||dz_i||² (||a_i||² + 1).

With B samples, the mean per-example squared norm m = mean_i |g_i|² and the batch gradient's
|G_B|², the paper's unbiased estimators (appendix A.1, with B_small = 1 and B_big = B) are
    tr(Σ) ≈ S = (m - |G_B|²) · B / (B - 1),    |G|² ≈ |G_B|² - S / B.
The penalties' gradient is the same for every example: it changes G but not Σ, so S is taken
from the data term and the penalties enter through |G_B|² alone.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from .curvature import LayerPass, sample_of
from .errors import InputError
from .parallel import chunk_bounds, map_chunks

SAMPLES = 4096  # samples for one measurement (one forward and backward pass over them)


def _passes(network, X, Y):
    """(float64 parameters, [LayerPass per chunk], n) for the cost on (X, Y)."""
    X = network.check_inputs(X)
    Y = network.check_labels(Y, X.shape[0])
    params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in network.params]
    X = np.asarray(X, np.float64)
    if network.output == "linear":
        Y = np.asarray(Y, np.float64)
    n = X.shape[0]
    bounds = chunk_bounds(n) or [(0, n)]

    def build(part):
        start, stop = bounds[part]
        return LayerPass(params, network.activation, network.output, X[start:stop], Y[start:stop], n,
                     second=False)

    passes = [build(0)] if len(bounds) == 1 else map_chunks(build, len(bounds))
    return params, passes, n


def _example_norms(state, n, L):
    """(n_chunk, L) squared norms of each example's own gradient, per layer (W and b together)."""
    out = np.empty((state.A[0].shape[1], L))
    for l in range(1, L + 1):
        dz_sq = np.einsum("ij,ij->j", state.dZ[l], state.dZ[l]) * (n * n)  # undo the batch's 1/n
        a_sq = np.einsum("ij,ij->j", state.A[l - 1], state.A[l - 1])
        out[:, l - 1] = dz_sq * (a_sq + 1.0)
    return out


def per_example_gradient_norms(network, X, Y, by_layer=False):
    """Squared norm of each example's gradient of its own cost (no penalty): (n,), or (n, L)
    per layer (W and b together) with by_layer=True."""
    params, passes, n = _passes(network, X, Y)
    norms = np.concatenate([_example_norms(state, n, len(params)) for state in passes])
    return norms if by_layer else norms.sum(axis=1)


@dataclass(frozen=True)
class NoiseScale:
    b_simple: float  # tr(Σ) / |G|²: about the critical batch size (inf when |G|² is lost in noise)
    trace_sigma: float  # unbiased estimate of tr(Σ), the per-example gradient's total variance
    gradient_sq: float  # unbiased estimate of |G|² (can come out <= 0 when noise dominates)
    batch_gradient_sq: float  # |G_B|² measured over the samples, penalties included
    mean_example_sq: float  # mean over the samples of |g_i|² (data term)
    samples: int  # B: the samples measured on
    batch_size: int | None  # the training batch being judged (None: not given)
    seconds: float
    reading: str

    def to_dict(self):
        return asdict(self)


def noise_scale_reading(b_simple, batch_size=None, full_batch=False):
    """One line, e.g. "critical batch ≈ 900; yours: 10 — ..."."""
    if not np.isfinite(b_simple) or b_simple <= 0:
        line = ("critical batch: not measurable here: the gradient is lost in the per-example noise "
                "on this sample (measure on more samples, or training is near a minimum)")
    else:
        line = f"critical batch ≈ {_round(b_simple)}"
    if batch_size is None or not np.isfinite(b_simple) or b_simple <= 0:
        return line
    yours = f"yours: {batch_size}" + (" (the full batch)" if full_batch else "")
    ratio = batch_size / b_simple
    if ratio < 0.5:
        advice = ("below it: larger batches would cut the steps needed almost in proportion "
                  "(about the same samples in all)")
    elif ratio <= 2.0:
        advice = "near it: a good trade of steps against samples"
    else:
        advice = ("above it: more samples per step buy few fewer steps; smaller batches would reach "
                  "the same cost with less computation")
    return f"{line}; {yours} — {advice}"


def _round(value):
    """Two significant figures for a batch size: 897 -> 900, 12.3 -> 12."""
    if value >= 100:
        digits = int(np.floor(np.log10(value))) - 1
        return f"{round(value, -digits):,.0f}"
    return f"{value:.2g}" if value < 10 else f"{round(value):d}"


def gradient_noise_scale(network, X, Y, l2=0.0, l1=0.0, batch_size=None, max_samples=SAMPLES, seed=0):
    """B_simple on a seeded sample of at most max_samples of (X, Y); `batch_size` is the training
    batch to compare it with (None for the full batch of X)."""
    started = time.perf_counter()
    full = batch_size is None or batch_size >= len(X)
    batch = len(X) if full else int(batch_size)
    X, Y = sample_of(X, Y, max_samples, seed)
    params, passes, B = _passes(network, X, Y)
    if B < 2:
        raise InputError("max_samples", "the noise scale needs at least 2 samples")
    L = len(params)

    def sums(part):
        state = passes[part]
        grads = [(state.dZ[l] @ state.A[l - 1].T, state.dZ[l].sum(axis=1, keepdims=True))
                 for l in range(1, L + 1)]
        return grads, float(_example_norms(state, B, L).sum())

    results = [sums(0)] if len(passes) == 1 else map_chunks(sums, len(passes))
    grads, total = results[0]
    for more_grads, more_total in results[1:]:
        total += more_total
        for (dW, db), (more_W, more_b) in zip(grads, more_grads, strict=True):
            dW += more_W
            db += more_b
    mean_sq = total / B
    # The penalties' gradient r is the same for every example: mean |g_i + r|² - |G_B + r|² equals
    # mean |g_i|² - |G_B|² of the data term alone, so S takes the data term's |G_B|².
    data_sq = _squared_norm(grads)
    for (dW, _), (W, _) in zip(grads, params, strict=True):
        if l2:
            dW += l2 * W
        if l1:
            dW += l1 * np.sign(W)
    batch_sq = _squared_norm(grads) if (l2 or l1) else data_sq
    trace_sigma = (mean_sq - data_sq) * B / (B - 1)
    gradient_sq = batch_sq - trace_sigma / B
    b_simple = trace_sigma / gradient_sq if gradient_sq > 0 else float("inf")
    return NoiseScale(b_simple=float(b_simple), trace_sigma=float(trace_sigma),
                      gradient_sq=float(gradient_sq), batch_gradient_sq=batch_sq, mean_example_sq=mean_sq,
                      samples=B, batch_size=batch, seconds=time.perf_counter() - started,
                      reading=noise_scale_reading(b_simple, batch, full))


def _squared_norm(grads):
    return float(sum(np.vdot(dW, dW) + np.vdot(db, db) for dW, db in grads))
