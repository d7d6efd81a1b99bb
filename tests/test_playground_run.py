"""What the Playground asks of its run (studio/playground_run.py): losses per epoch, Step epoch, a weight
or a bias typed in (at the next step, marked), Regenerate keeping the network."""

import dataclasses
import math

import numpy as np
import pytest

from backprop.errors import InputError
from backprop.profiles import PLAYGROUND
from backprop.runs import RunStore
from studio import session
from studio.playground_run import (
    EpochLosses,
    epoch_view,
    regenerate_points,
    set_parameter,
    step_epoch,
    steps_to_epoch_end,
    watch_epochs,
)


@pytest.fixture
def studio():
    studio = session.Studio(config=PLAYGROUND.default_config(), store=RunStore())  # circle, 250 to train
    studio.build()
    yield studio
    studio.release()


def test_losses_are_recorded_at_the_end_of_every_epoch_from_the_untrained_network(studio):
    observer = watch_epochs(studio)
    assert isinstance(observer, EpochLosses) and watch_epochs(studio) is observer
    assert len(observer.rows) == 1 and observer.rows[0][:2] == (0, 0.0)  # before any step
    studio.step(60)  # 25 steps an epoch (250 points, batches of 10)
    assert [row[:2] for row in observer.rows] == [(0, 0.0), (25, 1.0), (50, 2.0)]
    trainer = studio.trainer
    train, test = trainer.network.evaluate(trainer.x_train, trainer.y_train)[0], \
        trainer.network.evaluate(trainer.x_test, trainer.y_test)[0]
    view = epoch_view(studio)
    assert view.rows.shape == (3, 4) and view.steps_per_epoch == 25
    assert (view.train_loss, view.test_loss) == pytest.approx((train, test))  # now, between two epochs' ends
    assert view.rows[1, 2] > view.rows[2, 2]  # it learns


def test_step_epoch_ends_the_current_epoch(studio):
    watch_epochs(studio)
    assert steps_to_epoch_end(studio) == 25 == math.ceil(250 / 10)
    step_epoch(studio)
    assert studio.trainer.iteration == 25 and studio.trainer.epoch == 1.0
    studio.step(3)
    assert steps_to_epoch_end(studio) == 22
    step_epoch(studio)
    assert studio.trainer.iteration == 50 and studio.trainer.epoch == 2.0
    assert len(watch_epochs(studio).rows) == 3


def test_a_typed_weight_applies_at_the_next_step_and_is_marked(studio):
    studio.step(5)
    trainer = studio.trainer
    before = list(trainer.network.params)
    marker = set_parameter(studio, ["weight", 1, 2, 0], 1.5)
    W1 = trainer.network.params[0][0]
    assert W1[2, 0] == 1.5 and before[0][0][2, 0] != 1.5  # a new array: a snapshot keeps the old one
    old = pytest.approx(before[0][0][2, 0], abs=1e-4)
    assert marker == {"iteration": 5, "setting": "W1[3,1]", "old": old, "new": 1.5}
    assert trainer.history.markers[-1] == marker and studio.view().markers[-1] == marker
    set_parameter(studio, ["bias", 3, 0], -0.25)
    assert trainer.network.params[2][1][0, 0] == -0.25
    assert trainer.history.markers[-1]["setting"] == "b3[1]"
    studio.step(1)  # trained from the typed values
    assert trainer.iteration == 6 and trainer.network.params[0][0][2, 0] != 1.5


@pytest.mark.parametrize("target, value, field", [
    (["weight", 4, 0, 0], 1.0, "weight"), (["weight", 1, 4, 0], 1.0, "weight"),
    (["bias", 1, -1], 1.0, "bias"),
    (["weight", 1, 0, 0], float("nan"), "weight"), (["bias", 2, 0], "lots", "bias"),
    (["bias", 2, 0], 1e7, "bias"),
    ("W1", 1.0, "weight"), (["weight", 1, 0, True], 1.0, "weight"),
])
def test_a_typed_value_the_network_cannot_take_is_refused_by_name(studio, target, value, field):
    params = list(studio.trainer.network.params)
    with pytest.raises(InputError) as caught:
        set_parameter(studio, target, value)
    assert caught.value.field == field
    now = studio.trainer.network.params
    assert all(np.array_equal(W, W0) for (W, _), (W0, _) in zip(now, params, strict=True))


def test_regenerate_draws_new_points_for_the_same_network(studio):
    observer = watch_epochs(studio)
    studio.step(30)
    params = [(W.copy(), b.copy()) for W, b in studio.trainer.network.params]
    points = studio.data.plane_train.copy()
    regenerate_points(studio, dataclasses.replace(studio.config, seed=2))
    trainer = studio.trainer
    assert studio.config.seed == 2 and not np.array_equal(studio.data.plane_train, points)
    assert all(np.array_equal(W, W0) and np.array_equal(b, b0)
               for (W, b), (W0, b0) in zip(trainer.network.params, params, strict=True))
    assert trainer.iteration == 30 and trainer.epoch_observer is observer
    assert trainer.history.markers[-1] == {"iteration": 30, "setting": "points (seed)", "old": 1, "new": 2}
    assert np.array_equal(trainer.x_train[:, :2], studio.data.plane_train)
    studio.step(25)
    assert trainer.iteration == 55 and len(observer.rows) == 3  # the epochs go on counting
