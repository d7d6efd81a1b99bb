"""What the new statistics cost a training step: unit health (dead/saturated shares), activation
histograms and the trajectory's parameter snapshots, against the same trainer with that work off.

Both variants train the same run (same set-up, seed and batches), one step each in turn, so a busy
machine slows both alike. Two figures per preset:
- the ratio of the medians of single steps' CPU time (the process's, every thread's: the work the
  statistics add, little moved by other programs on a shared machine) and of the total CPU time;
- the statistics' own share: the CPU time spent inside them (timed where they run, the counter in
  the chunk workers' threads) over the CPU time of the steps that carried them. On a shared machine
  this is the steadier figure: it does not depend on two noisy step times.
Target: <= 3% slower.

    python benchmarks/bench_health.py                 # tutorial, tutorial-deep, mnist10
    python benchmarks/bench_health.py --presets tutorial --steps 200
    python benchmarks/bench_health.py --landscape      # also: a 25 x 25 loss landscape, tutorial set-up

The landscape figure is the time of a 25 x 25 grid (625 forward passes over the fixed 2,000-image
sample) for the tutorial's network after 20 steps, on both planes (target: under 30 s each), next
to the time of one full-batch training step as its peer.
"""

import argparse
import statistics
import threading
import time

from backprop.config import preset
from backprop.data import load_task
from backprop.health import UnitHealthCounter
from backprop.history import Trajectory
from backprop.landscape import compute_landscape, evaluation_sample, pca_plane, random_plane
from backprop.trainer import Trainer

STEPS = {"tutorial": 80, "tutorial-deep": 30, "mnist10": 600}  # steps per variant


class TimedCounter(UnitHealthCounter):
    """The trainer's counter, adding up the CPU time of its own work (per thread)."""

    def __init__(self, activation):
        super().__init__(activation)
        self.spent = {}

    def _timed(self, work, *args):
        started = time.thread_time()
        result = work(*args)
        name = threading.get_ident()
        self.spent[name] = self.spent.get(name, 0.0) + time.thread_time() - started
        return result

    def __call__(self, part, hidden):
        return self._timed(super().__call__, part, hidden)

    def finish(self):
        return self._timed(super().finish)


class TimedTrajectory(Trajectory):
    spent = 0.0

    def add(self, iteration, params, batch_size):
        started = time.thread_time()
        super().add(iteration, params, batch_size)
        self.spent += time.thread_time() - started


def without_statistics(trainer):
    """The same trainer with the statistics' work switched off: a counter for an activation that
    has no unhealthy state (no per-unit work), no histograms, no snapshots."""
    trainer._unit_health = UnitHealthCounter("linear")
    trainer.history.histograms.stride = 10**12
    trainer.history.trajectory = Trajectory(max_bytes=0)
    return trainer


def timed_step(trainer):
    cpu, wall = time.process_time(), time.perf_counter()
    trainer.step(1)
    return time.process_time() - cpu, time.perf_counter() - wall


def measure(name, steps):
    config = preset(name)
    data = load_task(config.dataset, digits=config.digits)
    with_stats = Trainer.from_config(config, data)
    with_stats._unit_health = TimedCounter(with_stats.network.activation)
    with_stats.history.trajectory = TimedTrajectory()
    without = without_statistics(Trainer.from_config(config, data))
    times = {"with": [], "without": []}
    for step in range(steps + 2):
        pair = [("with", with_stats), ("without", without)]
        for label, trainer in pair if step % 2 == 0 else pair[::-1]:
            timing = timed_step(trainer)
            if step >= 2:  # the first steps make buffers and the thread pool
                times[label].append(timing)
    assert with_stats.history.costs[-1] == without.history.costs[-1]  # the same run
    cpu_on, wall_on = (statistics.median(t) for t in zip(*times["with"], strict=True))
    cpu_off, wall_off = (statistics.median(t) for t in zip(*times["without"], strict=True))
    total_on, total_off = (sum(cpu for cpu, _ in times[label]) for label in ("with", "without"))
    own = sum(with_stats._unit_health.spent.values()) + with_stats.history.trajectory.spent
    share = own / (total_on + 2 * cpu_on)  # the two warm-up steps carried statistics too
    kept = with_stats.history
    print(f"{name:14s} CPU median with {1000 * cpu_on:7.2f} ms/step, without {1000 * cpu_off:7.2f}: "
          f"ratio {cpu_on / cpu_off:.3f}; total CPU ratio {total_on / total_off:.3f}; wall median ratio "
          f"{wall_on / wall_off:.3f}; the statistics' own share of the CPU time {share:.2%} "
          f"({steps} steps each; {kept.histograms.size} histograms, {len(kept.trajectory)} snapshots kept)",
          flush=True)
    return share


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
    parser.add_argument("--steps", type=int, default=None, help="steps per variant (default per preset)")
    parser.add_argument("--landscape", action="store_true", help="also time a 25 x 25 loss landscape")
    args = parser.parse_args()
    if args.landscape:
        landscape_seconds()
    shares = [measure(name.strip(), args.steps or STEPS[name.strip()]) for name in args.presets.split(",")]
    print(f"largest share of the statistics {max(shares):.2%} (target <= 3%)")


if __name__ == "__main__":
    main()
