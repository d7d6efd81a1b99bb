"""The step-by-step trainer: divergence, steering between steps, batches, history, threads."""

import copy
import dataclasses
import math
import threading
import time

import numpy as np
import pytest

from backprop.config import TrainConfig
from backprop.data import Dataset
from backprop.errors import InputError
from backprop.history import LAYER_STATS, History
from backprop.network import Network
from backprop.optimizers import Adam, GradientDescent, make_optimizer
from backprop.trainer import Trainer


def toy_data(n_train=40, n_test=10, n_features=5, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n_train + n_test, n_features))
    y = (x[:, 0] * n_classes).astype(np.int64) % n_classes
    x[:, 0] = np.arange(n_train + n_test) / (n_train + n_test)  # feature 0 names the sample
    return Dataset("toy", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                   [str(c) for c in range(n_classes)], None)


def make_trainer(optimizer=None, sizes=(5, 4, 1), data=None, **kwargs):
    net = Network(list(sizes), activation="tanh", seed=3)
    return Trainer(net, optimizer or GradientDescent(0.5), data or toy_data(), **kwargs)


def test_records_carry_cost_and_layer_stats():
    trainer = make_trainer(eval_every=2)
    records = trainer.step(4)
    assert [r["iteration"] for r in records] == [0, 1, 2, 3]
    assert all(set(layer) == set(LAYER_STATS) for r in records for layer in r["layers"])
    assert "test_accuracy" in records[1] and "test_accuracy" not in records[2]
    assert records[-1]["cost"] < records[0]["cost"]
    assert trainer.iteration == 4 and trainer.epoch == 4 and trainer.history.total_steps == 4
    first = records[0]["layers"][0]
    W_before = Network([5, 4, 1], activation="tanh", seed=3).params[0][0]
    assert first["W_norm"] == pytest.approx(np.linalg.norm(trainer.history.layer_stat("W_norm")[0, 0]))
    assert first["W_norm"] != pytest.approx(np.linalg.norm(W_before))  # the norm after the update
    assert first["update_ratio"] > 0 and first["dW_mean_abs"] > 0


def test_huge_learning_rate_diverges_naming_the_first_layer_and_keeping_parameters():
    trainer = make_trainer(GradientDescent(1e300))
    before = [(W.copy(), b.copy()) for W, b in trainer.network.params]
    records = trainer.step(5)
    assert len(records) == 1 and records[0]["diverged"]["iteration"] == 0
    assert trainer.diverged["layer"] == 1 and "layer 1" in trainer.diverged["reason"]
    assert trainer.history.divergence == trainer.diverged
    for (W, b), (W0, b0) in zip(trainer.network.params, before, strict=True):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)
    assert trainer.step(3) == [] and trainer.iteration == 0


def test_divergence_in_a_later_layer_names_that_layer():
    # Layer 1 gets exactly zero gradient (X = 0 and W2 = 0), so only layer 2 can blow up.
    data = toy_data()
    data.x_train[:] = 0.0
    net = Network([5, 4, 1], activation="relu", seed=1)
    net.set_params([(np.zeros((4, 5)), np.ones((4, 1))), (np.zeros((1, 4)), np.zeros((1, 1)))])
    trainer = Trainer(net, GradientDescent(1e300), data)
    trainer.step(3)
    assert trainer.diverged["layer"] == 2 and trainer.diverged["iteration"] == 0


def test_learning_rate_change_between_steps_keeps_optimizer_state_and_marks_history():
    trainer = make_trainer(Adam(learning_rate=0.01))
    trainer.step(3)
    trainer.change_setting("learning_rate", 0.05)
    assert trainer.history.markers == [{"iteration": 3, "setting": "learning_rate", "old": 0.01,
                                        "new": 0.05}]
    # What the next step must do if Adam's moments and step count carry on (no reset):
    expected_optimizer = copy.deepcopy(trainer.optimizer)
    _, grads = trainer.network.loss_and_gradients(trainer.x_train, trainer.y_train)
    updates = expected_optimizer.updates(grads)
    expected = [W - uW for (W, _), (uW, _) in zip(trainer.network.params, updates, strict=True)]
    trainer.step(1)
    assert trainer.optimizer.t == 4
    for (W, _), W_expected in zip(trainer.network.params, expected, strict=True):
        np.testing.assert_allclose(W, W_expected, rtol=1e-12)
    trainer.change_setting("l2", 0.01)
    trainer.change_setting("beta1", 0.8)
    assert [m["setting"] for m in trainer.history.markers] == ["learning_rate", "l2", "beta1"]


@pytest.mark.parametrize("name, value, field", [
    ("learning_rate", 0, "learning_rate"), ("learning_rate", float("nan"), "learning_rate"),
    ("learning_rate", -1, "learning_rate"), ("beta1", 1.0, "beta1"), ("momentum", 0.5, "momentum"),
])
def test_bad_setting_changes_are_refused_and_change_nothing(name, value, field):
    trainer = make_trainer(Adam(learning_rate=0.01))
    with pytest.raises(InputError) as caught:
        trainer.change_setting(name, value)
    assert caught.value.field == field
    assert trainer.optimizer.learning_rate == 0.01 and trainer.history.markers == []


def batches_seen(trainer, steps):
    """Sample numbers (feature 0 of toy_data) of each batch the trainer trains on."""
    seen = []
    real = trainer.network.loss_and_gradients

    def spy(X, Y, **penalties):
        seen.append(np.rint(X[:, 0] * 50).astype(int).tolist())
        return real(X, Y, **penalties)
    trainer.network.loss_and_gradients = spy
    trainer.step(steps)
    return seen


def test_mini_batches_cover_each_epoch_once_reshuffled_and_reproducible():
    batches = batches_seen(make_trainer(batch_size=10, shuffle_seed=7), 8)
    assert [len(b) for b in batches] == [10] * 8
    epoch1, epoch2 = sum(batches[:4], []), sum(batches[4:], [])
    assert sorted(epoch1) == sorted(epoch2) == list(range(40))
    assert epoch1 != epoch2  # a new order each epoch
    assert batches_seen(make_trainer(batch_size=10, shuffle_seed=7), 8) == batches
    assert batches_seen(make_trainer(batch_size=10, shuffle_seed=8), 8) != batches
    trainer = make_trainer(batch_size=10)
    trainer.step(6)
    assert trainer.epoch == 1.5


def test_a_batch_as_big_as_the_data_is_full_batch():
    trainer = make_trainer(batch_size=1000)
    assert trainer.batch_size is None
    assert [len(b) for b in batches_seen(trainer, 2)] == [40, 40]


def test_cosine_schedule_decays_the_step_to_zero():
    data = toy_data()
    config = TrainConfig(layers=[4, 1], lr_schedule="cosine", iterations=10, learning_rate=0.5)
    trainer = Trainer.from_config(config.validated(), data)
    factors = [trainer.lr_factor(i) for i in range(11)]
    assert factors[0] == 1.0 and factors[5] == pytest.approx(0.5) and factors[10] == pytest.approx(0)
    assert all(a > b for a, b in zip(factors, factors[1:], strict=False))
    # The applied update really is scaled: compare step 5 with a constant-rate twin.
    twin = Trainer.from_config(TrainConfig(layers=[4, 1], iterations=10, learning_rate=0.25)
                               .validated(), data)
    trainer.step(5)
    twin.network.set_params(trainer.network.params)
    twin.iteration = 5
    before = trainer.network.params[0][0].copy()
    trainer.step(1)
    twin.step(1)
    np.testing.assert_allclose(trainer.network.params[0][0] - before,
                               (twin.network.params[0][0] - before) * factors[5] / 0.5, rtol=1e-9)
    constant = make_trainer()
    assert constant.lr_factor(1000) == 1.0


def test_from_config_checks_the_output_layer_against_the_task():
    data = toy_data(n_classes=3)
    with pytest.raises(InputError) as caught:
        Trainer.from_config(TrainConfig(digits=None, layers=[4, 10]).validated(), data)
    assert caught.value.field == "layers" and "3 classes" in caught.value.message
    with pytest.raises(InputError) as caught:
        Trainer.from_config(TrainConfig(layers=[4, 1]).validated(), data)
    assert caught.value.field == "layers"
    with pytest.raises(InputError):
        make_trainer(lr_schedule="step")


def test_labels_outside_the_task_are_refused():
    data = toy_data()
    data.y_train[3] = 2
    with pytest.raises(InputError) as caught:
        make_trainer(data=data)
    assert caught.value.field == "Y" and "0..1" in caught.value.message
    data = toy_data()
    data.y_test = data.y_test[:-1]
    with pytest.raises(InputError) as caught:
        make_trainer(data=data)
    assert caught.value.field == "Y"


def test_history_stays_bounded_over_a_million_steps():
    history = History(n_layers=3, capacity=1000)
    stats = np.ones((3, len(LAYER_STATS)))
    for i in range(1_000_000):
        history.append(i, i / 100, 1.0 / (i + 1), stats)
    assert history.total_steps == 1_000_000
    assert history.size <= 1000 and history.stride == 1024
    iterations = history.iterations
    assert iterations[0] == 0 and np.all(np.diff(iterations) == history.stride)
    assert iterations[-1] >= 1_000_000 - history.stride
    costs = history.costs
    np.testing.assert_allclose(costs, 1.0 / (iterations + 1))
    held = sum(a.nbytes for a in (history._iteration, history._epoch, history._cost, history._layers))
    assert held <= 1000 * (8 + 8 + 8 + 3 * len(LAYER_STATS) * 4)
    for i in range(5000):
        history.add_evaluation({"iteration": i})
        history.add_marker(i, "learning_rate", 0.1, 0.2)
    assert len(history.evaluations) <= 1000 and len(history.markers) <= 10_000


def test_history_round_trips_through_a_dict():
    trainer = make_trainer(eval_every=3)
    trainer.step(7)
    trainer.change_setting("learning_rate", 0.1)
    copy_ = History.from_dict(trainer.history.to_dict())
    np.testing.assert_array_equal(copy_.costs, trainer.history.costs)
    np.testing.assert_array_equal(copy_.layer_stat("dW_norm"), trainer.history.layer_stat("dW_norm"))
    assert copy_.markers == trainer.history.markers and copy_.evaluations == trainer.history.evaluations
    assert len(trainer.history.rows()) == 7


def test_training_thread_with_another_thread_steering_and_watching():
    trainer = make_trainer(make_optimizer("momentum", learning_rate=0.1), batch_size=8)
    errors, snapshots = [], []
    stop, watched = threading.Event(), threading.Event()

    def train():
        try:  # at least 400 steps, and on until the other thread has watched 20 times
            while trainer.iteration < 400 or not watched.is_set():
                trainer.step(1)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            stop.set()

    thread = threading.Thread(target=train)
    thread.start()
    rates = [0.05, 0.1, 0.2]
    i = 0
    while not stop.is_set():
        trainer.change_setting("learning_rate", rates[i % 3])
        snapshots.append(trainer.snapshot())
        i += 1
        if i >= 20:
            watched.set()
    thread.join()
    assert not errors
    assert len(snapshots) >= 20
    for snap in snapshots:
        if snap["last"] is not None:
            assert snap["last"]["iteration"] == snap["iteration"] - 1
        assert [W.shape for W, _ in snap["params"]] == [(4, 5), (1, 4)]
        rate = snap["optimizer_values"]["learning_rate"]
        assert rate in rates or rate == 0.1
        assert math.isclose(snap["epoch"], snap["iteration"] * 8 / 40)
    iterations = [s["iteration"] for s in snapshots]
    assert iterations == sorted(iterations) and trainer.iteration >= 400
    markers = trainer.history.markers
    assert all(m["iteration"] <= n["iteration"] for m, n in zip(markers, markers[1:], strict=False))


def test_l2_set_between_steps_is_checked_like_the_set_up():
    x = np.random.default_rng(0).random((8, 3))
    y = np.array([0, 1] * 4)
    data = Dataset("toy", x, y, x[:2], y[:2], ["a", "b"], None)
    trainer = Trainer(Network([3, 2, 1]), GradientDescent(0.1), data)
    for bad in (-0.1, float("nan"), "much"):
        with pytest.raises(InputError, match="l2"):
            trainer.change_setting("l2", bad)
    assert trainer.l2 == 0.0 and not trainer.history.markers  # nothing changed
    trainer.change_setting("l2", 1e-3)
    assert trainer.l2 == 1e-3


def test_a_waiting_reader_goes_before_the_next_step():
    # A training loop lets go of the lock after a step and takes it again at once for the next;
    # a thread that only waited would lose that race again and again on a busy machine.
    trainer = make_trainer()
    seen = []

    def read():
        with trainer.reading():
            seen.append(trainer.iteration)

    trainer.lock.acquire()  # a step in progress
    reader = threading.Thread(target=read)
    reader.start()
    while trainer._readers_waiting == 0:
        time.sleep(0.001)
    trainer.lock.release()  # the step ends ...
    trainer.step(1)  # ... and the loop goes straight on to the next one
    reader.join()
    assert seen == [0] and trainer.iteration == 1 and trainer._readers_waiting == 0


def test_switching_optimizer_or_schedule_between_steps_is_marked_and_checked():
    trainer = make_trainer(make_optimizer("momentum", learning_rate=0.1))
    trainer.step(3)
    trainer.set_optimizer("adam", learning_rate=0.01)
    assert trainer.optimizer.name == "adam" and trainer.optimizer.values()["learning_rate"] == 0.01
    trainer.set_schedule("cosine", 50)
    trainer.step(1)
    assert trainer.lr_factor() < 1.0
    assert [(m["setting"], m["old"], m["new"]) for m in trainer.history.markers] == [
        ("optimizer", "momentum", "adam"), ("lr_schedule", "constant", "cosine")]
    with pytest.raises(InputError) as bad_name:
        trainer.set_optimizer("sgdd")
    with pytest.raises(InputError) as bad_rate:
        trainer.set_optimizer("adam", learning_rate=-1)
    with pytest.raises(InputError) as bad_schedule:
        trainer.set_schedule("step", 50)
    assert (bad_name.value.field, bad_rate.value.field, bad_schedule.value.field) == (
        "optimizer", "learning_rate", "lr_schedule")
    assert trainer.optimizer.name == "adam" and trainer.lr_schedule == "cosine"  # unchanged
    assert len(trainer.history.markers) == 2


def test_l1_is_trained_with_and_applies_at_the_next_step():
    """L1 reaches the step's cost (and gradients), and a change between steps is marked like L2's."""
    from backprop.data import load_task

    config = TrainConfig(dataset="xor", digits=None, layers=[4, 1], activation="tanh",
                         iterations=5).validated()
    data = load_task("xor", digits=None, points=100)
    plain = Trainer.from_config(config, data)
    penalised = Trainer.from_config(dataclasses.replace(config, l1=0.1).validated(), data)
    weights = sum(np.abs(W).sum() for W, _ in penalised.network.params)  # the same seed: the same weights
    cost_plain, cost_l1 = plain.step(1)[0]["cost"], penalised.step(1)[0]["cost"]
    assert cost_l1 == pytest.approx(cost_plain + 0.1 * weights, rel=1e-12)
    penalised.change_setting("l1", 0.0)
    assert penalised.history.markers[-1] == {"iteration": 1, "setting": "l1", "old": 0.1, "new": 0.0}


def tensorflow_playground_step(params, grads, learning_rate, l1):
    """TensorFlow Playground's updateWeights, weight by weight: the data's gradient step, then the
    L1 step; a weight that the L1 step takes across zero is set to zero."""
    new = []
    for (W, b), (dW, db) in zip(params, grads, strict=True):
        W_new = W.copy()
        for index, w in np.ndenumerate(W):
            half = w - learning_rate * dW[index]
            after = half - learning_rate * l1 * np.sign(w)
            W_new[index] = 0.0 if half * after < 0 else after
        new.append((W_new, b - learning_rate * db))
    return new


def test_l1_stops_a_weight_that_crosses_zero_at_zero_as_tensorflow_playground_does():
    """With L1, a weight that the penalty's part of a gradient-descent step takes across zero stops
    at zero; one that the data's gradient takes across goes on (issue 19)."""
    from backprop.trainer import l1_stop_at_zero

    W = np.array([[0.05, -0.05, 0.5, 0.02]])
    # penalty step 0.1: 0.05 -> -0.05 and -0.05 -> 0.05 cross because of it; 0.5 does not cross;
    # 0.02 - 0.5 (the data's gradient) was already across before the penalty's part
    W_new = np.array([[0.05 - 0.1, -0.05 + 0.1, 0.5 - 0.1, 0.02 - 0.5 - 0.1]])
    assert l1_stop_at_zero(W, W_new.copy(), 0.1).tolist() == [[0.0, 0.0, 0.4, pytest.approx(-0.58)]]

    X = np.random.default_rng(1).uniform(-1, 1, size=(30, 2))
    data = Dataset("toy", X, (X[:, 0] * X[:, 1] > 0).astype(np.int64), X[:5], np.zeros(5, np.int64),
                   ["0", "1"], None)
    trainer = Trainer(Network([2, 8, 1], activation="tanh", init="xavier", seed=4), GradientDescent(0.3),
                      data, l1=0.05)
    zeros = 0
    for _ in range(60):
        params = list(trainer.network.params)
        _, grads = trainer.network.loss_and_gradients(X, data.y_train)  # without the penalty
        trainer.step(1)
        expected = tensorflow_playground_step(params, grads, 0.3, 0.05)
        for (W, b), (W_tf, b_tf) in zip(trainer.network.params, expected, strict=True):
            assert np.allclose(W, W_tf, rtol=0, atol=1e-12) and np.allclose(b, b_tf, rtol=0, atol=1e-12)
        zeros = max(zeros, sum(int((W == 0).sum()) for W, _ in trainer.network.params))
    assert zeros > 0  # the rule was met on the way (the weights that L1 stopped)


def test_without_l1_or_with_momentum_a_step_is_plain():
    """The rule belongs to L1 with gradient descent: other steps are W - update, bit for bit."""
    for optimizer, l1 in ((GradientDescent(0.5), 0.0), (make_optimizer("momentum", learning_rate=0.5), 0.05)):
        fresh = copy.deepcopy(optimizer)
        trainer = make_trainer(optimizer=optimizer, l1=l1)
        twin = make_trainer(optimizer=copy.deepcopy(fresh), l1=l1)
        params = list(trainer.network.params)
        trainer.step(1)
        _, grads = twin.network.loss_and_gradients(*twin._next_batch(), l1=l1)
        updates = fresh.updates(grads)
        for (W, b), (W0, b0), (uW, ub) in zip(trainer.network.params, params, updates, strict=True):
            assert np.array_equal(W, W0 - uW) and np.array_equal(b, b0 - ub)


def test_the_epoch_observer_is_called_at_the_end_of_each_pass_over_the_training_set():
    seen = []
    trainer = make_trainer(batch_size=10)  # 40 training samples: 4 steps a pass
    trainer.epoch_observer = lambda t: seen.append((t.iteration, t.epoch))
    trainer.step(9)
    assert seen == [(4, 1.0), (8, 2.0)]
    whole = make_trainer()  # full batch: every step is a pass
    whole.epoch_observer = lambda t: seen.append(t.iteration)
    whole.step(2)
    assert seen[-2:] == [1, 2]
