"""Unit health: dead and saturated shares, their reading, and how the trainer and history keep them."""

import dataclasses

import numpy as np
import pytest

from backprop.config import preset
from backprop.data import Dataset, load_task
from backprop.health import (
    HEALTH_STATS,
    HISTOGRAM_BINS,
    UnitHealthCounter,
    health_reading,
    unit_health,
)
from backprop.history import History, Trajectory, first_stride
from backprop.network import Network
from backprop.optimizers import make_optimizer
from backprop.trainer import Trainer

DEAD, SATURATED = HEALTH_STATS.index("dead_share"), HEALTH_STATS.index("saturated_share")


def test_dead_share_counts_units_zero_for_every_sample():
    A = np.array([[0.0, 0.0, 0.0],    # dead
                  [0.0, 2.0, 0.0],    # alive on one sample: not dead
                  [0.0, 0.0, 0.0],    # dead
                  [1.0, 1.0, 1.0]])   # alive
    shares = unit_health([A], "relu")
    assert shares[0, DEAD] == 0.5
    assert np.isnan(shares[0, SATURATED])  # a ReLU does not saturate


def test_leaky_relu_units_with_negative_outputs_only_are_dead():
    A = np.array([[-0.01, -0.02, -0.5], [-0.01, 0.3, -0.2]])
    assert unit_health([A], "leaky_relu")[0, DEAD] == 0.5


def test_saturated_share_needs_most_samples_within_one_percent_of_a_limit():
    A = np.array([[0.005, 0.995, 0.5],    # 2 of 3 samples saturated: saturated
                  [0.5, 0.5, 0.999],      # 1 of 3: not
                  [0.01, 0.99, 0.5],      # exactly at 1% of a limit is not within it
                  [0.001, 0.002, 0.0]])   # all: saturated
    shares = unit_health([A], "sigmoid")
    assert shares[0, SATURATED] == 0.5
    assert np.isnan(shares[0, DEAD])
    half = np.array([[0.0, 1.0, 0.5, 0.5]])  # exactly half the samples is not "most"
    assert unit_health([half], "sigmoid")[0, SATURATED] == 0.0


def test_tanh_saturates_near_both_limits_and_each_layer_counts_alone():
    first = np.array([[-0.995, -0.999, 0.2], [0.1, 0.2, 0.3]])
    second = np.array([[0.995, 0.999, 0.9999]])
    shares = unit_health([first, second], "tanh")
    np.testing.assert_array_equal(shares[:, SATURATED], [0.5, 1.0])


def test_a_linear_layer_is_neither_dead_nor_saturated():
    shares = unit_health([np.zeros((3, 4)), np.zeros((2, 4))], "linear")
    assert shares.shape == (2, 2) and np.isnan(shares).all()


def test_counts_from_chunks_add_up_to_the_whole_batch():
    rng = np.random.default_rng(0)
    means = np.linspace(-8, 8, 50)[:, None]  # some units far below zero, some far above
    for activation, A in (("relu", np.maximum(rng.normal(means, 1, size=(50, 300)), 0)),
                          ("sigmoid", 1 / (1 + np.exp(-rng.normal(means, 2, size=(50, 300)))))):
        whole = unit_health([A], activation)
        counter = UnitHealthCounter(activation).start(300)
        for part, (start, stop) in enumerate([(0, 100), (100, 120), (120, 300)]):
            counter(part, [A[:, start:stop]])
        np.testing.assert_array_equal(counter.finish().shares, whole)
        assert 0 < np.nanmax(whole) < 1  # the data makes some units unhealthy and some not


def test_reading_names_the_worst_layer_only_when_mostly_unhealthy():
    shares = np.array([[np.nan, 0.3], [np.nan, 0.83], [np.nan, 0.6]])
    assert health_reading(shares) == ("layer 2: 83% of units saturated — gradients through them vanish; "
                                      "try a smaller learning rate, Xavier/He initialisation, or ReLU")
    assert health_reading(np.array([[0.9, np.nan]])).startswith("layer 1: 90% of units dead")
    assert health_reading(np.array([[np.nan, 0.5], [np.nan, 0.1]])) is None
    assert health_reading(np.full((2, 2), np.nan)) is None
    assert health_reading(np.zeros((0, 2))) is None


def toy_data(n_train, n_features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n_train + 20, n_features))
    y = (x[:, 0] > 0.5).astype(np.int64)
    return Dataset("toy", x[:n_train], y[:n_train], x[n_train:], y[n_train:], ["0", "1"], None)


def test_a_relu_net_with_a_huge_negative_bias_is_all_dead():
    net = Network([6, 8, 5, 1], activation="relu", init="he", seed=2)
    net.set_params([(W, np.full_like(b, -1e6)) if l < net.n_layers - 1 else (W, b)
                    for l, (W, b) in enumerate(net.params)])
    trainer = Trainer(net, make_optimizer("sgd", learning_rate=0.1), toy_data(40))
    trainer.step(3)
    health = trainer.history.unit_health()
    np.testing.assert_array_equal(health[:, :, DEAD], 1.0)
    assert health_reading(health[-1]).startswith("layer 1: 100% of units dead")


def test_the_trainer_measures_a_chunked_batch_like_one_forward_pass():
    """1,500 samples are split into chunks computed on worker threads; the counts must match the
    shares of one forward pass over the whole batch with the same weights."""
    data = toy_data(1500)
    net = Network([6, 30, 20, 1], activation="relu", init="he", seed=5)
    net.set_params([(W, b - 0.6) for W, b in net.params])  # some units dead, some not
    expected = unit_health(net.forward(data.x_train)[:-1], "relu")
    trainer = Trainer(net, make_optimizer("sgd", learning_rate=0.1), data)
    trainer.step(1)
    # the history keeps float32
    np.testing.assert_array_equal(trainer.history.unit_health()[0], expected.astype(np.float32))
    assert 0 < expected[0, DEAD] < 1


def test_tutorial_deep_preset_in_its_first_200_iterations():
    """What is true of the tutorial's deep sigmoid net ([392, 196, 98, 1], LeCun-normal init, lr 0.1):
    its units do NOT saturate in the first 200 iterations (0% of units in every layer; no sample is
    within 1% of 0 or 1). Its activations stay near 0.5, where sigmoid'(Z) is close to its maximum
    0.25: the first layers' gradients vanish because each layer multiplies them by at most 0.25,
    not because of saturation. (Trained on 1,000 images of the task to keep this test short.)"""
    config = dataclasses.replace(preset("tutorial-deep"), subset=1000).validated()
    data = load_task(config.dataset, digits=config.digits, subset=config.subset)
    trainer = Trainer.from_config(config, data)
    trainer.step(200)
    saturated = trainer.history.unit_health()[:, :, SATURATED]
    assert saturated.shape == (200, 3)
    np.testing.assert_array_equal(saturated, 0.0)
    hidden = trainer.network.forward(data.x_train)[:-1]
    for A in hidden:
        slope = (A * (1 - A)).mean()
        assert 0.22 < slope <= 0.25
    gradient = trainer.history.layer_stat("dW_mean_abs")[-1]
    assert gradient[0] < gradient[-1] / 10  # and yet the first layer's gradients are far smaller


def test_the_deep_sigmoid_net_with_30_times_its_weights_saturates_in_its_first_layers():
    """The same net started with weights 30x too large (a bad initialisation): most of its first
    layers' units are saturated from the start, and the reading says so."""
    config = dataclasses.replace(preset("tutorial-deep"), subset=1000).validated()
    data = load_task(config.dataset, digits=config.digits, subset=config.subset)
    trainer = Trainer.from_config(config, data)
    trainer.network.set_params([(30 * W, b) for W, b in trainer.network.params])
    trainer.step(20)
    saturated = trainer.history.unit_health()[:, :, SATURATED]
    assert (saturated[:, :2] > 0.5).all(), saturated[-1]
    assert "of units saturated" in health_reading(trainer.history.unit_health()[-1])


def test_histograms_are_taken_every_few_steps_and_stay_bounded():
    net = Network([6, 8, 4, 1], activation="tanh", seed=1)
    trainer = Trainer(net, make_optimizer("sgd", learning_rate=0.5), toy_data(40))
    record = trainer.history.histograms
    record.capacity, record.stride = 8, 1  # small, to see it halve; from the first step
    trainer.step(40)
    iterations, low, high, shares = record.arrays()
    assert 4 < len(iterations) <= 8 and record.stride > 2
    assert (iterations % record.stride == 0).all() and iterations[0] == 0
    assert shares.shape == (len(iterations), 2, HISTOGRAM_BINS)
    np.testing.assert_allclose(shares.sum(axis=2), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(low, -1.0)
    np.testing.assert_array_equal(high, 1.0)


def test_health_rows_halve_with_the_history_and_survive_a_round_trip():
    trainer = Trainer(Network([6, 8, 4, 1], activation="relu", seed=1),
                      make_optimizer("sgd", learning_rate=0.5), toy_data(40), history_capacity=16)
    trainer.step(50)
    history = trainer.history
    assert history.size <= 16 and history.unit_health().shape == (history.size, 2, 2)
    assert not np.isnan(history.unit_health()[:, :, DEAD]).any()
    again = History.from_dict(history.to_dict())
    np.testing.assert_array_equal(again.unit_health(), history.unit_health())
    for mine, theirs in zip(again.histograms.arrays(), history.histograms.arrays(), strict=True):
        np.testing.assert_allclose(mine, theirs)
    it_a, snaps_a = again.trajectory.snapshots()
    it_b, snaps_b = history.trajectory.snapshots()
    np.testing.assert_array_equal(it_a, it_b)
    np.testing.assert_array_equal(snaps_a, snaps_b)


def test_an_old_history_without_health_loads_as_not_measured():
    history = History(2)
    history.append(0, 0.1, 0.7, np.zeros((2, 5)))
    data = history.to_dict()
    for key in ("health", "histograms", "trajectory", "landscape"):
        del data[key]
    again = History.from_dict(data)
    assert np.isnan(again.unit_health()).all() and len(again.trajectory) == 0


def test_trajectory_keeps_a_bounded_thinned_record():
    params = [(np.zeros((3, 4)), np.zeros((3, 1)))]  # 15 parameters: 30 bytes a snapshot
    trajectory = Trajectory(max_bytes=30 * 6, max_snapshots=32)
    for iteration in range(100):
        trajectory.add(iteration, [(W + iteration, b - iteration) for W, b in params], batch_size=20_000)
    iterations, snapshots = trajectory.snapshots()
    assert trajectory.capacity == 6 and 3 <= len(iterations) <= 6
    assert iterations[0] == 0 and (np.diff(iterations) == trajectory.stride).all()
    np.testing.assert_allclose(snapshots[:, 0], iterations)  # float16 differences, exact here
    np.testing.assert_allclose(snapshots[:, -1], -iterations)
    assert len(trajectory.snapshots(before=int(iterations[-1]))[0]) == len(iterations) - 1


def test_a_network_too_large_for_the_budget_keeps_no_trajectory():
    trajectory = Trajectory(max_bytes=100)
    trajectory.add(0, [(np.zeros((10, 10)), np.zeros((10, 1)))], batch_size=100)
    assert trajectory.too_large and len(trajectory) == 0
    assert not trajectory.wants(0, batch_size=100)


def test_the_records_start_further_apart_for_small_batches():
    assert first_stride(65536, 11272) == 8 and first_stride(65536, 4096) == 16
    assert first_stride(16384, 11272) == 2 and first_stride(16384, 1024) == 16
    assert first_stride(65536, 512) == 32 and first_stride(16384, 0) == 32  # at most 32 steps apart


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_the_observer_is_only_attached_during_a_step(activation):
    net = Network([6, 4, 1], activation=activation, seed=1)
    trainer = Trainer(net, make_optimizer("sgd", learning_rate=0.5), toy_data(40))
    trainer.step(2)
    assert net.activation_observer is None
    assert net.copy().activation_observer is None


def test_the_unit_health_chart_shows_one_line_per_hidden_layer_in_percent():
    from studio.analysis_figures import unit_health_figure

    health = np.full((3, 2, 2), np.nan)
    health[:, :, SATURATED] = [[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]]
    figure = unit_health_figure(np.array([0, 1, 2]), health, "sigmoid")
    assert [trace["name"] for trace in figure["data"]] == ["layer 1", "layer 2"]
    np.testing.assert_allclose(figure["data"][1]["y"], [90, 80, 70])
    assert "Saturated" in figure["layout"]["title"]["text"] and figure["layout"]["height"] == 380
    empty = unit_health_figure(np.zeros(0, dtype=int), np.zeros((0, 2, 2)), "relu")
    assert empty["data"][0]["y"].size == 0 and "annotations" in empty["layout"]  # "No steps yet"
    assert unit_health_figure(np.array([0]), np.full((1, 1, 2), np.nan), "linear")["data"] == []


def test_histograms_with_different_ranges_line_up_on_one_value_axis():
    from studio.analysis_figures import activation_histogram_figure, rebin

    moved = rebin(np.array([0.5, 0.5]), 0.0, 2.0, np.array([0.0, 1.0, 2.0, 4.0]))
    np.testing.assert_allclose(moved, [0.5, 0.5, 0.0])
    shares = np.zeros((2, 1, HISTOGRAM_BINS))
    shares[:, 0, 0] = 1.0  # all values in the lowest bin
    low, high = np.array([[0.0], [0.0]]), np.array([[1.0], [3.0]])
    figure = activation_histogram_figure(np.array([0, 10]), low, high, shares, layer=0, bins=30)
    z = np.array(figure["data"][0]["z"])
    assert z.shape == (30, 2) and np.allclose(z.sum(axis=0), 100)
    assert figure["data"][0]["y"][-1] < 3.0 and figure["data"][0]["x"] == [0, 10]
