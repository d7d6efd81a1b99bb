"""Stability limits on sharpness (backprop.stability) and the edge of stability, reproduced
(backprop.edge_of_stability)."""

import math

import numpy as np
import pytest

from backprop.config import TrainConfig
from backprop.curvature import HessianOperator, dense_hessian, measure_curvature
from backprop.edge_of_stability import DEMO, run_edge_of_stability
from backprop.errors import InputError
from backprop.network import Network
from backprop.optimizers import Adam, GradientDescent, Momentum, make_optimizer
from backprop.stability import (
    SharpnessTracker,
    adam_preconditioner,
    measure_stability,
    stability_limit,
    stability_reading,
    trainer_stability,
)
from backprop.trainer import Trainer


def test_limits_of_each_optimizer():
    assert stability_limit(GradientDescent(learning_rate=0.1)) == (pytest.approx(20.0), "2/η")
    assert stability_limit(Momentum(learning_rate=0.1, momentum=0.9))[0] == pytest.approx(38.0)
    assert stability_limit(Adam(learning_rate=0.001, beta1=0.9))[0] == pytest.approx(38.0 / 0.001)
    assert stability_limit(GradientDescent(learning_rate=0.1), learning_rate=0.05)[0] == pytest.approx(40.0)
    with pytest.raises(InputError):
        stability_limit(GradientDescent(), learning_rate=0.0)


def test_readings():
    assert stability_reading("λ_max", 52.1, 20.0, "2/η", 2 / 52.1) == (
        "λ_max 52.1 > 2/η = 20.0: this learning rate is above the stability limit for this curvature; "
        "lr < 0.038 would be stable")
    assert "at the edge of stability" in stability_reading("λ_max", 21.0, 20.0, "2/η", 2 / 21)
    assert "stable, close to the limit" in stability_reading("λ_max", 19.0, 20.0, "2/η", 2 / 19)
    assert stability_reading("λ_max", 5.0, 20.0, "2/η", 0.4).endswith("stable for this curvature "
                                                                     "(lr up to 0.4 would be)")
    assert "no positive curvature" in stability_reading("preconditioned λ_max", -1.0, 38.0, "x", math.inf)


def quadratic_problem(seed=0):
    """A linear model with squared error: the cost is exactly quadratic, so the limits are exact."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(50, 4)) * np.array([3.0, 1.0, 0.5, 0.2])
    Y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=50)
    net = Network([4, 1], activation="tanh", output="linear", seed=seed)
    return net, X, Y


@pytest.mark.parametrize("name", ["sgd", "momentum"])
def test_the_limit_separates_converging_from_diverging_on_a_quadratic(name):
    net, X, Y = quadratic_problem()
    measured = measure_stability(net, X, Y, make_optimizer(name, learning_rate=0.01), tol=1e-10)
    exact = np.linalg.eigvalsh(dense_hessian(HessianOperator(net, X, Y)))[-1]
    assert measured.value == pytest.approx(exact, rel=1e-8) and measured.verdict == "stable"
    for factor, grows in ((0.97, False), (1.03, True)):
        trainer_net = net.copy()
        optimizer = make_optimizer(name, learning_rate=measured.stable_learning_rate * factor)
        assert measure_stability(trainer_net, X, Y, optimizer, tol=1e-10).verdict == \
            ("stable" if factor < 1 else "edge")
        data = type("Data", (), {"x_train": X, "y_train": Y, "x_test": X[:0], "y_test": Y[:0]})
        trainer = Trainer(trainer_net, optimizer, data)
        costs = [r["cost"] for r in trainer.step(200)]
        assert (costs[-1] > costs[0]) == grows, (name, factor, costs[0], costs[-1])


def test_adams_preconditioner_is_the_engines_denominator():
    rng = np.random.default_rng(0)
    adam = Adam(learning_rate=0.01, beta1=0.9, beta2=0.99, epsilon=1e-3)
    for _ in range(5):
        grads = [(rng.normal(size=(3, 2)), rng.normal(size=(3, 1)))]
        update = adam.updates(grads)
    P = adam_preconditioner(adam)
    m_hat = [(mW / (1 - 0.9**5), mb / (1 - 0.9**5)) for mW, mb in adam.first]
    for (uW, ub), (PW, Pb), (mW, mb) in zip(update, P, m_hat, strict=True):
        assert np.allclose(uW, 0.01 * mW / PW, rtol=1e-12) and np.allclose(ub, 0.01 * mb / Pb, rtol=1e-12)
    with pytest.raises(InputError, match="no step yet"):
        adam_preconditioner(Adam())


def small_trainer(optimizer="adam", **settings):
    config = TrainConfig(dataset="circle", digits=None, points=120, noise=10, layers=[5, 1],
                         activation="tanh", init="xavier", optimizer=optimizer, **settings).validated()
    return Trainer.from_config(config, config.load_data())


def test_adam_is_judged_by_its_preconditioned_sharpness():
    trainer = small_trainer("adam", learning_rate=0.01)
    tracker = SharpnessTracker(every=5)
    assert tracker.measure(trainer) is None  # no step yet: no preconditioner
    trainer.step(30)
    result = trainer_stability(trainer, tol=1e-10)
    op = HessianOperator(trainer.network, trainer.x_train, trainer.y_train)
    scale = 1 / np.sqrt(op.flatten(adam_preconditioner(trainer.optimizer)))
    exact = np.linalg.eigvalsh(scale[:, None] * dense_hessian(op) * scale[None, :])[-1]
    assert result.value == pytest.approx(exact, rel=1e-6)
    assert result.measure == "preconditioned λ_max" and result.formula == "(2+2β₁)/((1−β₁)η)"
    assert result.limit == pytest.approx(38 / 0.01)
    assert result.stable_learning_rate == pytest.approx(0.01 * result.limit / result.value)
    assert result.reading.startswith(f"preconditioned λ_max {result.value:#.3g}")


def test_the_trainers_scheduled_learning_rate_and_penalties_are_judged():
    trainer = small_trainer("sgd", learning_rate=0.2, lr_schedule="cosine", iterations=100, l2=0.05)
    trainer.step(50)
    result = trainer_stability(trainer, tol=1e-10)
    assert result.learning_rate == pytest.approx(0.2 * trainer.lr_factor())
    assert result.limit == pytest.approx(2 / (0.2 * trainer.lr_factor()))
    plain = measure_curvature(trainer.network, trainer.x_train, trainer.y_train, l2=0.05, k=1,
                              trace_probes=0, tol=1e-10)
    assert result.value == pytest.approx(plain.sharpness, rel=1e-8)
    row = result.to_dict()
    assert "vector" not in row and row["verdict"] == result.verdict and row["ratio"] == result.ratio


def test_warm_started_tracking_finds_the_top_eigenvalue_each_time():
    """Across an edge-of-stability run the top eigenvector turns; warm starts still find λ_max."""
    config = TrainConfig(dataset="multi-gauss", digits=None, points=500, noise=10, layers=[32, 32, 1],
                         activation="tanh", init="xavier", learning_rate=0.065).validated()
    trainer = Trainer.from_config(config, config.load_data())
    tracker = SharpnessTracker(every=40, max_samples=None)
    for _ in range(1400):
        trainer.step(1)
        point = tracker.after_step(trainer)
        if point is not None:
            cold = measure_curvature(trainer.network, trainer.x_train, trainer.y_train, k=1, trace_probes=0,
                                     max_samples=None, tol=1e-9)
            assert point.stability.value == pytest.approx(cold.sharpness, rel=2e-3), point.iteration
    assert len(tracker.points) == 1400 // 40 and tracker.rows()[0]["iteration"] == 40
    assert np.mean([p.stability.products for p in tracker.points[1:]]) < 10  # warm starts are cheap


def test_a_point_is_labelled_with_the_iteration_of_the_parameters_it_measured():
    """The training thread may step between the tracker's call and its copy of the parameters (the
    live diagnostics run on a thread of their own): the label is the copy's iteration."""
    import contextlib

    config = TrainConfig(dataset="circle", digits=None, layers=[4, 1], activation="tanh",
                         learning_rate=0.1).validated()
    trainer = Trainer.from_config(config, config.load_data())
    trainer.step(5)
    locked = trainer.reading

    @contextlib.contextmanager
    def a_step_lands_first():  # the training thread took the lock first
        trainer.step(1)
        with locked():
            yield

    trainer.reading = a_step_lands_first
    point = SharpnessTracker(every=1, max_samples=None).measure(trainer)
    trainer.reading = locked
    assert point.iteration == 6 == trainer.iteration
    measured_now = trainer_stability(trainer, max_samples=None)
    assert point.stability.value == pytest.approx(measured_now.value, rel=1e-6)


def test_tracker_settings_are_checked():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="track_sharpness"):
            SharpnessTracker(every=bad)


def test_edge_of_stability_reproduced():
    """Full-batch GD at two learning rates: λ_max rises from well below 2/η, then hovers within ±15%
    of 2/η (at two different sharpnesses) while the cost keeps falling, no longer every step."""
    runs = [run_edge_of_stability(lr, steps) for lr, steps in DEMO]
    for run in runs:
        summary = run.summary()
        assert summary.first_ratio < 0.85, summary
        assert summary.edge_iteration is not None, summary
        assert 0.85 <= summary.ratio_after[0] and summary.ratio_after[1] <= 1.15, summary
        assert summary.final_cost < summary.cost_at_edge, summary
        assert summary.rises_before == 0 and summary.rises_after > 0, summary
        assert summary.reproduced
        assert run.sharpness_seconds < run.train_seconds
    low, high = (np.mean(run.sharpness[-20:]) for run in runs)
    assert high / low == pytest.approx(DEMO[0][0] / DEMO[1][0], rel=0.1)  # each at its own 2/η
