"""One full-batch training step of the tutorial's [784, 196, 1] network: ours against PyTorch.

Both sides do the same work on the 11272 MNIST 5-vs-8 images, in the same dtype and with the
same number of BLAS threads: forward, backward (no gradient for the input), and the plain
gradient-descent update. Steps are timed alternately so a busy machine slows both alike;
the median of the repetitions is reported, next to this machine's measured GEMM peak.

    python benchmarks/bench_step.py [--repeats 15]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_step.py

Needs `pip install torch==2.13.0` (benchmark only; the engine never imports it).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backprop.data import load_task  # noqa: E402
from backprop.network import Network  # noqa: E402
from backprop.optimizers import GradientDescent  # noqa: E402
from backprop.trainer import Trainer  # noqa: E402

SIZES = [784, 196, 1]
LEARNING_RATE = 0.1


def blas_threads():
    """(threads, description) of NumPy's BLAS, via threadpoolctl when it is installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count(), "threadpoolctl not installed; assuming os.cpu_count() threads"
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    if not blas:
        return os.cpu_count(), "no BLAS found by threadpoolctl"
    pool = blas[0]
    described = (f"{pool['internal_api']} {pool.get('version')} kernel={pool.get('architecture')} "
                 f"threads={pool['num_threads']} ({Path(pool['filepath']).name})")
    return pool["num_threads"], described


def gemm_peak(dtype, n=2048, repeats=5):
    """GFLOP/s of one large square np.matmul: what this machine's BLAS can reach."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=out)
    best = min(timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def timed(work):
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def step_flops(n_samples):
    """Multiply-adds x 2 of the matrix products: forward W x A, backward dW and dA (not dA0)."""
    flops = 0
    for l, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        flops += 2 * n_samples * fan_in * fan_out * (2 if l == 0 else 3)  # forward + dW (+ dA)
    return flops


def torch_step_function(torch, network, X, Y):
    """The same step in PyTorch eager mode, from the same initial weights."""
    params = []
    for W, b in network.params:
        params += [torch.tensor(W, requires_grad=True), torch.tensor(b[:, 0], requires_grad=True)]
    X_t, Y_t = torch.from_numpy(X), torch.from_numpy(Y.astype(X.dtype))
    W1, b1, W2, b2 = params

    def step():
        A1 = torch.sigmoid(X_t @ W1.T + b1)
        Z2 = (A1 @ W2.T + b2)[:, 0]
        cost = torch.nn.functional.binary_cross_entropy_with_logits(Z2, Y_t)
        cost.backward()
        with torch.no_grad():
            for p in params:
                p -= LEARNING_RATE * p.grad
                p.grad = None
        return float(cost.detach())
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    import torch

    threads, blas = blas_threads()
    torch.set_num_threads(threads)
    # The machine's GEMM peak with every BLAS thread, measured before our trainer runs (it keeps
    # OpenBLAS single-threaded from its first split batch on, its own workers being the parallelism).
    peaks = {dtype: gemm_peak(dtype) for dtype in ("float32", "float64")}
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}")
    print(f"NumPy {np.__version__} BLAS: {blas}")
    print(f"PyTorch {torch.__version__}, threads {torch.get_num_threads()}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a shared machine slows both sides)")
    for dtype in ("float32", "float64"):
        data = load_task("mnist", (5, 8), seed=1, dtype=dtype)
        network = Network(SIZES, seed=1, dtype=dtype)
        trainer = Trainer(network.copy(), GradientDescent(LEARNING_RATE), data)
        torch_step = torch_step_function(torch, network, data.x_train, data.y_train)
        ours_cost = trainer.step(1)[0]["cost"]
        theirs_cost = torch_step()
        assert abs(ours_cost - theirs_cost) < 1e-4, (ours_cost, theirs_cost)  # the same step
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(timed(trainer.step))
            theirs.append(timed(torch_step))
        ours_ms, theirs_ms = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
        flops = step_flops(len(data.y_train))
        peak = peaks[dtype]
        print(f"{dtype}: ours {ours_ms:.1f} ms/step ({flops / ours_ms / 1e6:.0f} GFLOP/s), "
              f"PyTorch {theirs_ms:.1f} ms/step ({flops / theirs_ms / 1e6:.0f} GFLOP/s), "
              f"ours/PyTorch = {ours_ms / theirs_ms:.2f}; GEMM peak {peak:.0f} GFLOP/s; "
              f"{flops / 1e9:.2f} GFLOP per step")


if __name__ == "__main__":
    main()
