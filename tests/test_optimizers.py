"""Optimizers: each rule's arithmetic, optimizer_values changeable between steps, state kept."""

import math

import numpy as np
import pytest

from backprop.errors import InputError
from backprop.optimizers import OPTIMIZERS, Adam, GradientDescent, Momentum, make_optimizer


def grads_of(*values):
    return [(np.full((2, 3), v), np.full((2, 1), v)) for v in values]


def test_gradient_descent_is_the_tutorials_rule():
    (uW, ub), = GradientDescent(0.5).updates(grads_of(2.0))
    np.testing.assert_array_equal(uW, 1.0)
    np.testing.assert_array_equal(ub, 1.0)


def test_momentum_accumulates_velocity_and_keeps_it_across_setting_changes():
    opt = Momentum(learning_rate=0.1, momentum=0.9)
    opt.updates(grads_of(1.0))  # v = 1
    opt.learning_rate = 0.2
    (uW, _), = opt.updates(grads_of(1.0))  # v = 0.9 + 1 = 1.9
    np.testing.assert_allclose(uW, 0.2 * 1.9)


def test_adam_matches_the_paper_and_keeps_state_when_lr_changes():
    opt = Adam(learning_rate=0.01, beta1=0.9, beta2=0.999, epsilon=1e-8)
    m = v = 0.0
    for t, (g, lr) in enumerate([(0.5, 0.01), (-0.2, 0.01), (0.3, 0.05)], start=1):
        opt.learning_rate = lr
        (uW, ub), = opt.updates(grads_of(g))
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        expected = lr * (m / (1 - 0.9**t)) / (math.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(uW, expected, rtol=1e-5)
        np.testing.assert_allclose(ub, expected, rtol=1e-5)
    assert opt.t == 3


def test_float32_updates_stay_float32():
    grads = [(np.ones((2, 2), np.float32), np.ones((2, 1), np.float32))]
    for name in OPTIMIZERS:
        (uW, ub), = make_optimizer(name).updates(grads)
        assert uW.dtype == np.float32 and ub.dtype == np.float32, name


def test_updates_do_not_touch_the_gradients():
    grads = grads_of(1.0)
    for name in OPTIMIZERS:
        make_optimizer(name).updates(grads)
        np.testing.assert_array_equal(grads[0][0], 1.0)


@pytest.mark.parametrize("call, field", [
    (lambda: GradientDescent(0), "learning_rate"),
    (lambda: GradientDescent(-1), "learning_rate"),
    (lambda: GradientDescent(float("nan")), "learning_rate"),
    (lambda: GradientDescent("fast"), "learning_rate"),
    (lambda: Momentum(0.1, momentum=1.0), "momentum"),
    (lambda: Adam(beta1=-0.1), "beta1"),
    (lambda: Adam(beta2=1.5), "beta2"),
    (lambda: make_optimizer("rmsprop"), "optimizer"),
    (lambda: make_optimizer("sgd", momentum=0.9), "optimizer"),
])
def test_bad_settings_name_the_field(call, field):
    with pytest.raises(InputError) as caught:
        call()
    assert caught.value.field == field


def test_settings_list_each_optimizers_settings():
    assert set(make_optimizer("adam").values()) == {"learning_rate", "beta1", "beta2", "epsilon"}
    assert set(make_optimizer("momentum").values()) == {"learning_rate", "momentum"}
    assert set(make_optimizer("sgd").values()) == {"learning_rate"}
