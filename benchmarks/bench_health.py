"""What the new statistics cost a training step: unit health (dead/saturated shares), activation
histograms and the trajectory's parameter snapshots, against the same trainer with that work off.

Both variants train the same run (same set-up, seed and batches), interleaved block by block so a
busy machine slows both alike. The figures are medians of single steps: the process's CPU time
(every thread's: the work the statistics add, little moved by other programs on a shared machine)
and the wall time. Target: <= 3% slower.

    python benchmarks/bench_health.py                 # tutorial, tutorial-deep, mnist10
    python benchmarks/bench_health.py --presets tutorial --rounds 9
    python benchmarks/bench_health.py --landscape      # also: a 25 x 25 loss landscape, tutorial set-up

The landscape figure is the time of a 25 x 25 grid (625 forward passes over the fixed 2,000-image
sample) for the tutorial's network after 20 steps, on both planes (target: under 30 s each), next
to the time of one full-batch training step as its peer.
"""

import argparse
import statistics
import time

from backprop.config import preset
from backprop.data import load_task
from backprop.health import UnitHealthCounter
from backprop.history import Trajectory
from backprop.landscape import compute_landscape, evaluation_sample, pca_plane, random_plane
from backprop.trainer import Trainer

STEPS = {"tutorial": 12, "tutorial-deep": 6, "mnist10": 60}  # steps per block


def without_statistics(trainer):
    """The same trainer with the statistics' work switched off: a counter for an activation that
    has no unhealthy state (no per-unit work), no histograms, no snapshots."""
    trainer._unit_health = UnitHealthCounter("linear")
    trainer.history.histograms.stride = 10**12
    trainer.history.trajectory = Trajectory(max_bytes=0)
    return trainer


def step_times(trainer, steps):
    """[(cpu seconds, wall seconds)] of each step."""
    times = []
    for _ in range(steps):
        cpu, wall = time.process_time(), time.perf_counter()
        trainer.step(1)
        times.append((time.process_time() - cpu, time.perf_counter() - wall))
    return times


def measure(name, rounds):
    config = preset(name)
    data = load_task(config.dataset, digits=config.digits)
    with_stats = Trainer.from_config(config, data)
    without = without_statistics(Trainer.from_config(config, data))
    step_times(with_stats, 2), step_times(without, 2)  # warm-up: buffers, thread pool
    times = {"with": [], "without": []}
    for round_ in range(rounds):
        order = [("with", with_stats), ("without", without)]
        for label, trainer in order if round_ % 2 == 0 else order[::-1]:
            times[label] += step_times(trainer, STEPS[name])
    assert with_stats.iteration == without.iteration
    assert with_stats.history.costs[-1] == without.history.costs[-1]  # the same run
    cpu_on, wall_on = (statistics.median(t) for t in zip(*times["with"], strict=True))
    cpu_off, wall_off = (statistics.median(t) for t in zip(*times["without"], strict=True))
    total_on, total_off = (sum(cpu for cpu, _ in times[label]) for label in ("with", "without"))
    kept = with_stats.history
    print(f"{name:14s} CPU with {1000 * cpu_on:7.2f} ms/step, without {1000 * cpu_off:7.2f}: ratio "
          f"{cpu_on / cpu_off:.3f} | wall with {1000 * wall_on:7.2f}, without {1000 * wall_off:7.2f}: "
          f"ratio {wall_on / wall_off:.3f} | total CPU ratio {total_on / total_off:.3f} "
          f"({len(times['with'])} steps each; {kept.histograms.size} "
          f"histograms, {len(kept.trajectory)} snapshots kept)", flush=True)
    return max(cpu_on / cpu_off, total_on / total_off)


def landscape_seconds(resolution=25):
    config = preset("tutorial")
    trainer = Trainer.from_config(config, load_task(config.dataset, digits=config.digits))
    started = time.perf_counter()
    trainer.step(20)
    step = (time.perf_counter() - started) / 20
    index = evaluation_sample(len(trainer.y_train))
    X, Y = trainer.x_train[index], trainer.y_train[index]
    iterations, snapshots = trainer.history.trajectory.snapshots(before=trainer.iteration)
    planes = [random_plane(trainer.network.params, seed=0),
              pca_plane(iterations, snapshots, trainer.network.params, trainer.iteration)]
    for plane in planes:
        landscape = compute_landscape(trainer.network, plane, X, Y, resolution, trainer.iteration)
        print(f"landscape {plane.kind:6s} {resolution}x{resolution} on {landscape.samples:,} images: "
              f"{landscape.seconds:5.1f} s (target < 30 s; one full-batch training step: "
              f"{1000 * step:.0f} ms, {landscape.seconds / step:.0f} steps' time)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tutorial,tutorial-deep,mnist10")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--landscape", action="store_true", help="also time a 25 x 25 loss landscape")
    args = parser.parse_args()
    if args.landscape:
        landscape_seconds()
    ratios = [measure(name.strip(), args.rounds) for name in args.presets.split(",")]
    print(f"worst CPU-time ratio (median step or total) {max(ratios):.3f} (target <= 1.030)")


if __name__ == "__main__":
    main()
