"""The learning-rate finder sweeps on a copy, stops on explosion and suggests a sensible value."""

import numpy as np
import pytest

from backprop.config import TrainConfig
from backprop.data import Dataset
from backprop.errors import InputError
from backprop.lr_finder import find_learning_rate, steepest_lr
from backprop.trainer import Trainer


def toy_data(n=256, features=8, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.rand(n, features)
    y = (x[:, 0] + x[:, 1] > 1.0).astype(np.int64)
    return Dataset("toy", x, y, x[:32], y[:32], ["no", "yes"], None)


def test_sweep_leaves_the_current_network_untouched_and_stops_when_cost_explodes():
    data = toy_data()
    config = TrainConfig(layers=[16, 1], activation="relu", init="he", optimizer="adam",
                         learning_rate=0.01).validated()
    trainer = Trainer.from_config(config, data)
    trainer.step(3)
    before = [(W.copy(), b.copy()) for W, b in trainer.network.params]
    result = find_learning_rate(config, data, network=trainer.network, min_lr=1e-5, max_lr=100.0,
                                steps=80)
    for (W, b), (W0, b0) in zip(trainer.network.params, before, strict=True):
        assert np.array_equal(W, W0) and np.array_equal(b, b0)
    n = len(result.costs)
    assert n == len(result.learning_rates) == len(result.smoothed)
    assert n < 80, "Adam at a learning rate of 100 must blow up before the end of the sweep"
    assert "exploded" in result.stopped or "NaN" in result.stopped
    assert np.all(np.diff(result.learning_rates) > 0)
    assert 1e-5 <= result.suggestion <= result.minimum_lr
    assert result.suggestion <= result.minimum_lr / 10 + 1e-12
    assert min(result.smoothed) < result.smoothed[0]  # it did learn somewhere in the sweep


def test_steepest_descent_is_found_before_the_minimum():
    lrs = np.geomspace(1e-4, 1, 41)
    x = np.log10(lrs)
    curve = 1 / (1 + np.exp(6 * (x + 2))) + np.where(x > -1, (x + 1) ** 2 * 3, 0)  # steepest at 1e-2
    assert steepest_lr(lrs, curve) == pytest.approx(1e-2, rel=0.3)
    assert steepest_lr(lrs[:3], curve[:3]) is None


def test_fresh_network_from_the_config_and_sampled_data():
    data = toy_data(n=600)
    config = TrainConfig(layers=[4, 1], learning_rate=0.5, batch_size=32).validated()
    result = find_learning_rate(config, data, steps=30, max_samples=100, max_lr=1.0)
    assert len(result.costs) == 30
    assert result.stopped.startswith("it reached max_lr")
    assert result.to_dict()["suggestion"] == result.suggestion


@pytest.mark.parametrize("optimizer_values, field", [({"min_lr": 0}, "min_lr"), ({"max_lr": 1e-7}, "max_lr"),
                                          ({"steps": 3}, "steps"), ({"min_lr": float("nan")}, "min_lr")])
def test_bad_sweep_settings_are_named(optimizer_values, field):
    with pytest.raises(InputError) as error:
        find_learning_rate(TrainConfig(layers=[2, 1]).validated(), toy_data(), **optimizer_values)
    assert error.value.field == field
