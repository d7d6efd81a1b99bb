"""The tutorial preset reproduces the tutorial's printed costs (its first 101 iterations).

About 101 full-batch steps on 11272 images: several seconds. The full 1000-iteration run and
its accuracies are checked by benchmarks/bench_tutorial.py.
"""

import pytest

from backprop.config import preset
from backprop.data import load_task
from backprop.trainer import Trainer


@pytest.mark.slow
def test_tutorial_costs_at_iterations_0_and_100():
    config = preset("tutorial")
    data = load_task(config.dataset, config.digits, seed=config.seed, dtype=config.dtype)
    assert data.x_train.shape == (11272, 784) and data.x_test.shape == (1866, 784)
    trainer = Trainer.from_config(config, data)
    records = trainer.step(101)
    assert records[0]["cost"] == pytest.approx(0.7043777294167167, abs=1e-9)
    assert records[100]["cost"] == pytest.approx(0.30940359715951, abs=1e-9)
