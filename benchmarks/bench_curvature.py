"""Curvature measurements: the edge of stability, and what tracking the sharpness costs.

1. The edge of stability (backprop.edge_of_stability): full-batch gradient descent at two learning
   rates, λ_max against 2/η over time, and the summary the test checks.
2. The tutorial set-up (preset "tutorial": MNIST 5 vs 8, [784, 196, 1] sigmoid, full batch, lr 0.1):
   one training step against one sharpness measurement on the default sample (warm-started, as
   SharpnessTracker does every N steps, and cold), and the tracker's share of a whole run's time
   with a measurement every N steps (target: at most 10% at N = 20). Both are timed in the same
   process on the same data, alternating, so a busy machine slows both alike.
3. For reference: the top-3 eigenvalues with Hutchinson's trace, the gradient noise scale, and
   (when SciPy is installed) how many products ARPACK's eigsh needs for the same λ_max.

    python benchmarks/bench_curvature.py [--every 20] [--samples 1000] [--steps 200] [--skip-eos]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backprop.config import preset  # noqa: E402
from backprop.curvature import SAMPLES, HessianOperator, measure_curvature, sample_of  # noqa: E402
from backprop.edge_of_stability import DEMO, run_edge_of_stability  # noqa: E402
from backprop.noise_scale import gradient_noise_scale  # noqa: E402
from backprop.stability import SharpnessTracker, trainer_stability  # noqa: E402
from backprop.trainer import Trainer  # noqa: E402


def edge_of_stability(every):
    print("== The edge of stability: multi-gauss, [2, 32, 32, 1] tanh, full-batch gradient descent ==")
    for lr, steps in DEMO:
        run = run_edge_of_stability(lr, steps, every=every)
        print(f"\nη = {lr}: 2/η = {run.limit:.1f}   ({steps} steps, training {run.train_seconds:.2f} s, "
              f"λ_max every {every} steps {run.sharpness_seconds:.2f} s)")
        print(f"{'step':>6} {'λ_max':>8} {'2/η':>7} {'ratio':>6} {'cost':>9}")
        stride = max(1, len(run.iterations) // 24)
        for i in range(0, len(run.iterations), stride):
            it, lam = run.iterations[i], run.sharpness[i]
            print(f"{it:6d} {lam:8.2f} {run.limit:7.1f} {lam / run.limit:6.3f} {run.costs[it]:9.5f}")
        s = run.summary()
        print(f"reached 0.95·2/η at step {s.edge_iteration}; from there λ_max/(2/η) in "
              f"[{s.ratio_after[0]:.3f}, {s.ratio_after[1]:.3f}]; cost {s.cost_at_edge:.5f} -> "
              f"{s.final_cost:.5f}, rising on {s.rises_after} steps after the edge and {s.rises_before} "
              f"before; reproduced: {s.reproduced}")


def tutorial(every, samples, steps):
    print(f"\n== Tutorial set-up: one sharpness measurement on {samples} samples vs one training step ==")
    config = preset("tutorial")
    data = config.load_data()
    trainer = Trainer.from_config(config, data)
    trainer.step(3)  # warm up buffers and the thread pool
    n_train = len(trainer.y_train)
    cold = trainer_stability(trainer, max_samples=samples)
    vector = cold.vector
    step_times, warm = [], []
    for _ in range(8):  # alternate: 5 steps, one warm measurement
        for _ in range(5):
            started = time.perf_counter()
            trainer.step(1)
            step_times.append(time.perf_counter() - started)
        result = trainer_stability(trainer, max_samples=samples, v0=vector)
        vector = result.vector
        warm.append(result)
    step = statistics.median(step_times)
    measure = statistics.median(r.seconds for r in warm)
    print(f"training step (full batch, {n_train} samples): {step * 1e3:.1f} ms (median of {len(step_times)})")
    print(f"sharpness, warm start: {measure * 1e3:.1f} ms, {warm[-1].products} products "
          f"(median of {len(warm)}); cold start: {cold.seconds * 1e3:.1f} ms, {cold.products} products")
    print(f"one measurement = {measure / step:.2f} training steps; every {every} steps: "
          f"{measure / (every * step):.1%} of training time (target <= 10%)")
    print(f"last reading: {warm[-1].reading}")

    tracker = SharpnessTracker(every=every, max_samples=samples)
    trained = trainer.seconds
    for _ in range(steps):
        trainer.step(1)
        tracker.after_step(trainer)
    trained = trainer.seconds - trained
    print(f"a run of {steps} steps with SharpnessTracker(every={every}): training {trained:.2f} s, "
          f"tracking {tracker.seconds:.2f} s = {tracker.seconds / trained:.1%} of training time "
          f"({len(tracker.points)} measurements)")

    full = trainer_stability(trainer, max_samples=None, tol=1e-6)
    sampled = trainer_stability(trainer, max_samples=samples, tol=1e-6)
    print(f"λ_max on all {n_train} samples {full.value:.4f} ({full.seconds:.2f} s), on the {samples}-sample "
          f"subset {sampled.value:.4f} ({sampled.value / full.value - 1:+.2%})")
    return trainer


def reference(trainer, samples):
    print("\n== Reference measurements on the tutorial set-up ==")
    net = trainer.network
    curvature = measure_curvature(net, trainer.x_train, trainer.y_train, k=3, trace_probes=16,
                                  max_samples=samples)
    print(f"top-3 eigenvalues {np.round(curvature.eigenvalues, 4).tolist()}, trace "
          f"{curvature.trace:.2f} ± {curvature.trace_error:.2f} (16 probes): {curvature.products} products, "
          f"{curvature.seconds:.2f} s")
    noise = gradient_noise_scale(net, trainer.x_train, trainer.y_train)
    print(f"gradient noise scale on {noise.samples} samples: B_simple {noise.b_simple:.1f} "
          f"({noise.seconds * 1e3:.0f} ms): {noise.reading}")
    try:
        from scipy.sparse.linalg import LinearOperator, eigsh
    except ImportError:
        print("(SciPy not installed: no eigsh comparison)")
        return
    X, Y = sample_of(trainer.x_train, trainer.y_train, samples)
    op = HessianOperator(net, X, Y)
    ours = trainer_stability(trainer, max_samples=samples)
    started = time.perf_counter()
    value = eigsh(LinearOperator((op.dim, op.dim), matvec=op.flat_matvec, dtype=np.float64), k=1,
                  which="LA", tol=1e-3, v0=np.random.default_rng(0).standard_normal(op.dim),
                  return_eigenvectors=False)[0]
    print(f"λ_max, cold start, tol 1e-3: ours {ours.value:.4f} in {ours.products} products; SciPy eigsh "
          f"{value:.4f} in {op.products} products ({time.perf_counter() - started:.2f} s)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=20, help="steps between sharpness measurements")
    parser.add_argument("--samples", type=int, default=SAMPLES, help="samples per measurement")
    parser.add_argument("--steps", type=int, default=200, help="steps of the tracked tutorial run")
    parser.add_argument("--skip-eos", action="store_true", help="only the tutorial timings")
    args = parser.parse_args(argv)
    if not args.skip_eos:
        edge_of_stability(args.every)
    trainer = tutorial(args.every, args.samples, args.steps)
    reference(trainer, args.samples)


if __name__ == "__main__":
    main()
