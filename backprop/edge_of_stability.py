"""The edge of stability, reproduced (Cohen, Kaur, Li, Kolter, Talwalkar, ICLR 2021).

Full-batch gradient descent on a small tanh network fitting the 2D "multi-gauss" regression set
(squared error, as in most of the paper's experiments). At each learning rate η the sharpness
λ_max first rises (progressive sharpening) until it reaches 2/η, then hovers there instead of
rising past it, while the cost goes on falling, but no longer every step. The two default learning
rates end up at two different sharpnesses, each at its own 2/η.

    run = run_edge_of_stability(0.05, steps=3600)
    run.summary().reproduced   # True
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .config import TrainConfig
from .stability import EDGE_BAND, SharpnessTracker
from .trainer import Trainer

# (learning rate, steps): at both, the sharpness starts near 20 and reaches 2/η (30.8, then 40)
# within the first two thirds of the steps. About 1 ms a step with tracking, on one core.
DEMO = ((0.065, 2400), (0.05, 3600))
REACHED = 0.95  # the sharpness has reached the limit once λ_max >= REACHED * 2/η


def edge_config(learning_rate, steps):
    """The set-up: multi-gauss (500 points, 10% noise, half for training), [2, 32, 32, 1] tanh,
    Xavier init, full-batch gradient descent at `learning_rate`."""
    return TrainConfig(dataset="multi-gauss", digits=None, points=500, noise=10, layers=[32, 32, 1],
                       activation="tanh", init="xavier", optimizer="sgd", learning_rate=learning_rate,
                       batch_size=None, iterations=steps, eval_every=max(1, steps)).validated()


@dataclass(frozen=True)
class EdgeSummary:
    learning_rate: float
    limit: float  # 2/η
    first_ratio: float  # λ_max / (2/η) at the start
    edge_iteration: int | None  # first measurement with λ_max >= 0.95 · 2/η (None: never)
    ratio_after: tuple  # (lowest, highest) λ_max / (2/η) from there on
    cost_at_edge: float | None
    final_cost: float  # the lowest cost over the last tenth of the steps
    rises_before: int  # steps whose cost rose, before the edge
    rises_after: int  # and from the edge on
    reproduced: bool  # rose from below, then stayed within ±EDGE_BAND of 2/η, the cost still falling


@dataclass(frozen=True)
class EdgeRun:
    learning_rate: float
    limit: float
    iterations: tuple  # when λ_max was measured
    sharpness: tuple  # λ_max at those iterations
    costs: np.ndarray  # the cost of every step
    train_seconds: float
    sharpness_seconds: float

    def summary(self):
        ratios = np.asarray(self.sharpness) / self.limit
        reached = np.flatnonzero(ratios >= REACHED)
        costs = self.costs
        final = float(costs[-max(1, len(costs) // 10):].min())
        if not len(reached):
            return EdgeSummary(self.learning_rate, self.limit, float(ratios[0]), None, (), None, final,
                               int(np.sum(np.diff(costs) > 0)), 0, False)
        edge = self.iterations[reached[0]]
        after = ratios[reached[0]:]
        rises = np.diff(costs) > 0
        summary = dict(first_ratio=float(ratios[0]), edge_iteration=int(edge),
                       ratio_after=(float(after.min()), float(after.max())),
                       cost_at_edge=float(costs[edge]), final_cost=final,
                       rises_before=int(rises[:edge].sum()), rises_after=int(rises[edge:].sum()))
        reproduced = (summary["first_ratio"] < 1 - EDGE_BAND
                      and 1 - EDGE_BAND <= after.min() and after.max() <= 1 + EDGE_BAND
                      and final < summary["cost_at_edge"] and summary["rises_after"] > 0)
        return EdgeSummary(self.learning_rate, self.limit, reproduced=bool(reproduced), **summary)


def run_edge_of_stability(learning_rate, steps, every=20, on_point=None):
    """Train the set-up for `steps` full-batch steps, measuring λ_max at step 0 and every `every`
    steps (SharpnessTracker on the whole training set); on_point(SharpnessPoint) sees each."""
    config = edge_config(learning_rate, steps)
    trainer = Trainer.from_config(config, config.load_data())
    tracker = SharpnessTracker(every=every, max_samples=None)
    costs = np.empty(steps + 1)
    started = time.perf_counter()
    for i in range(steps + 1):
        point = tracker.after_step(trainer)
        if point is not None and on_point is not None:
            on_point(point)
        if i < steps:
            costs[i] = trainer.step(1)[0]["cost"]
    costs[steps] = trainer.network.evaluate(trainer.x_train, trainer.y_train)[0]
    total = time.perf_counter() - started
    return EdgeRun(learning_rate=float(learning_rate), limit=2.0 / learning_rate,
                   iterations=tuple(p.iteration for p in tracker.points),
                   sharpness=tuple(p.stability.value for p in tracker.points), costs=costs,
                   train_seconds=total - tracker.seconds, sharpness_seconds=tracker.seconds)
