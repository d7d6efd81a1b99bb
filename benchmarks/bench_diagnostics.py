"""What the Train page's diagnostics cost training: the tutorial set-up trained in a run's background
thread with and without its diagnostics thread (the cost watch, λ_max every 20 steps and B_simple
every 100: the page's defaults), in the same process on the same data, alternating, so that a busy
machine slows both alike. Prints each pair, the median ratio (target: tracking costs at most 10% of
training time) and what the diagnostics measured.

    python benchmarks/bench_diagnostics.py [--steps 200] [--rounds 3] [--every 20] [--noise-every 100]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backprop.config import preset  # noqa: E402
from backprop.run import Run  # noqa: E402
from backprop.trainer import Trainer  # noqa: E402


def train(config, data, steps, every=None, noise_every=None):
    """(wall seconds of `steps` steps in the run's background thread, seconds spent measuring, the
    diagnostics' view after they caught up)."""
    trainer = Trainer.from_config(config, data)
    run = Run(config, trainer, record=False, source="cli")
    if every or noise_every:
        run.diagnostics.configure(watch=True, sharpness_every=every, noise_every=noise_every)
    started = time.perf_counter()
    run.start(steps)
    while run.running:
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    run.diagnostics.drain()
    return seconds, run.diagnostics.seconds, run.diagnostics.view()


def sequential_share(config, data, every, noise_every, rounds=4):
    """One warm λ_max measurement and one B_simple against `every` training steps, alternating in one
    thread: the share of training time the measurements take, whatever else the machine runs."""
    from backprop.diagnostics import Snapshot, measure_noise, measure_sharpness

    trainer = Trainer.from_config(config, data)
    trainer.step(2)
    vector, steps, sharpness, noise = None, [], [], []
    for _ in range(rounds):
        started = time.perf_counter()
        trainer.step(5)
        steps.append((time.perf_counter() - started) / 5)
        with trainer.reading():
            snapshot = Snapshot.of(trainer)
        started = time.perf_counter()
        point = measure_sharpness(trainer, snapshot, v0=vector)
        sharpness.append(time.perf_counter() - started)
        vector = point.stability.vector
        started = time.perf_counter()
        measure_noise(trainer, snapshot)
        noise.append(time.perf_counter() - started)
    step, one, other = statistics.median(steps), statistics.median(sharpness), statistics.median(noise)
    share = one / (every * step) + other / (noise_every * step)
    print(f"one step {step * 1e3:.0f} ms; one warm λ_max {one * 1e3:.0f} ms ({one / step:.2f} steps, "
          f"{point.stability.products} products); one B_simple {other * 1e3:.0f} ms "
          f"({other / step:.2f} steps): {share:.1%} of training time at every {every} and {noise_every} "
          "steps, measured one after another")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=int, default=20, help="steps between λ_max measurements")
    parser.add_argument("--noise-every", type=int, default=100, help="steps between B_simple measurements")
    args = parser.parse_args(argv)
    config = preset("tutorial")
    data = config.load_data()
    train(config, data, 5)  # warm up: the thread pool, the data's first pass
    sequential_share(config, data, args.every, args.noise_every)
    print(f"tutorial set-up, {args.steps} full-batch steps in a run's thread; load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    ratios = []
    for round_ in range(args.rounds):
        plain, _, _ = train(config, data, args.steps)
        tracked, measuring, view = train(config, data, args.steps, args.every, args.noise_every)
        ratios.append(tracked / plain)
        print(f"round {round_ + 1}: without {plain:.2f} s, with diagnostics {tracked:.2f} s "
              f"(ratio {tracked / plain:.3f}; {len(view.sharpness)} λ_max and {len(view.noise)} B_simple "
              f"measurements, {measuring:.2f} s of measuring on the diagnostics thread); load average "
              f"{os.getloadavg()[0]:.1f}")
    ratio = statistics.median(ratios)
    print(f"median ratio {ratio:.3f}: the diagnostics cost {ratio - 1:+.1%} of training time at λ_max every "
          f"{args.every} and B_simple every {args.noise_every} steps (target <= +10%)")
    last = view.sharpness[-1] if view.sharpness else None
    if last is not None:
        print(f"last λ_max: {last.stability.reading} (iteration {last.iteration})")
    if view.noise:
        print(f"last noise scale: {view.noise[-1].noise.reading}")


if __name__ == "__main__":
    main()
