"""Optimizers as small classes: each turns gradients into updates.

Knobs are plain attributes (learning_rate, momentum, beta1, ...), read at every step, so a
person can change them between any two steps without resetting the optimizer's state.
`updates()` only computes; the trainer checks the updates are finite before applying them,
so a diverging step leaves the parameters as they were.
"""

import math

import numpy as np

from .errors import InputError


def check_learning_rate(value, field="learning_rate"):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(field, f"{value!r} is not a number; use a positive number such as 0.1") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(field, f"must be a positive finite number (e.g. 0.1), got {value}")
    return value


def check_fraction(value, field):
    """A decay rate in [0, 1)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(field, f"{value!r} is not a number; use a value from 0 up to "
                                "(not including) 1") from None
    if not math.isfinite(value) or not 0 <= value < 1:
        raise InputError(field, f"must lie in [0, 1), got {value}")
    return value


def check_penalty(value, field="l2"):
    """A weight penalty: a finite number >= 0 (0 switches it off)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(field, f"{value!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(field, f"must be a finite number >= 0, got {value}")
    return value


class GradientDescent:
    """The tutorial's rule: W := W - learning_rate * dW."""

    name = "sgd"

    def __init__(self, learning_rate=0.1):
        self.learning_rate = check_learning_rate(learning_rate)

    def knobs(self):
        return {"learning_rate": self.learning_rate}

    def updates(self, grads):
        lr = self.learning_rate
        return [(lr * dW, lr * db) for dW, db in grads]


class Momentum:
    """Heavy-ball momentum: v := momentum * v + dW;  W := W - learning_rate * v."""

    name = "momentum"

    def __init__(self, learning_rate=0.1, momentum=0.9):
        self.learning_rate = check_learning_rate(learning_rate)
        self.momentum = check_fraction(momentum, "momentum")
        self.velocity = None

    def knobs(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum}

    def updates(self, grads):
        if self.velocity is None:
            self.velocity = [(np.zeros_like(dW), np.zeros_like(db)) for dW, db in grads]
        result = []
        for (vW, vb), (dW, db) in zip(self.velocity, grads, strict=True):
            vW *= self.momentum
            vW += dW
            vb *= self.momentum
            vb += db
            result.append((self.learning_rate * vW, self.learning_rate * vb))
        return result


class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction."""

    name = "adam"

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.learning_rate = check_learning_rate(learning_rate)
        self.beta1 = check_fraction(beta1, "beta1")
        self.beta2 = check_fraction(beta2, "beta2")
        self.epsilon = check_learning_rate(epsilon, "epsilon")
        self.t = 0
        self.first = None  # running mean of gradients, per layer (for W, for b)
        self.second = None  # running mean of squared gradients

    def knobs(self):
        return {"learning_rate": self.learning_rate, "beta1": self.beta1, "beta2": self.beta2,
                "epsilon": self.epsilon}

    def updates(self, grads):
        if self.first is None:
            self.first = [(np.zeros_like(dW), np.zeros_like(db)) for dW, db in grads]
            self.second = [(np.zeros_like(dW), np.zeros_like(db)) for dW, db in grads]
        self.t += 1
        # Bias correction folded into the step size, as in the paper's section 2.
        step = self.learning_rate * math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        return [(self._update(mW, vW, dW, step), self._update(mb, vb, db, step))
                for (mW, mb), (vW, vb), (dW, db) in zip(self.first, self.second, grads, strict=True)]

    def _update(self, m, v, g, step):
        """m and v are updated in place; one scratch array becomes the returned update."""
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        update = np.square(g)
        update *= 1 - self.beta2
        v += update
        np.sqrt(v, out=update)
        update += self.epsilon
        np.divide(m, update, out=update)
        update *= step
        return update


OPTIMIZERS = {"sgd": GradientDescent, "momentum": Momentum, "adam": Adam}


def make_optimizer(name, **knobs):
    if name not in OPTIMIZERS:
        raise InputError("optimizer", f"{name!r} is not one of {', '.join(OPTIMIZERS)}")
    cls = OPTIMIZERS[name]
    allowed = cls().knobs()
    unknown = set(knobs) - set(allowed)
    if unknown:
        raise InputError("optimizer", f"{name} has no setting {', '.join(sorted(unknown))}; "
                                      f"it takes {', '.join(allowed)}")
    return cls(**knobs)
