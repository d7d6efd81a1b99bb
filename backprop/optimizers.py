"""Optimizers as small classes: each turns gradients into updates and declares its own settings.

An optimizer's `settings` (beyond the learning rate, which every optimizer has) are `Setting`
declarations: the config, CLI, sidebar and URL take them from here, so a new optimizer setting
is one line in this file plus the code that uses it. Values are plain attributes read at every
step, so a person can change them between any two steps without resetting the optimizer's
state. `updates()` only computes; the trainer checks the updates are finite before applying
them, so a diverging step leaves the parameters as they were.
"""

import math

import numpy as np

from .errors import InputError
from .setting import Setting

LEARNING_RATE = Setting(
    "learning_rate", "float", 0.1, "Learning rate (log scale)",
    "Step size of gradient descent; applies at the next step and is marked on the cost chart",
    low=0.0, low_open=True, live=True, sweep=True, log=True, cli_aliases=("--lr",))


def decay_rate(name, default, label, help, owner):
    """A running-average decay rate in [0, 1), owned by one optimizer."""
    return Setting(name, "float", default, label, help, low=0.0, high=1.0, high_open=True, live=True,
                   sweep=True, owner=owner)


class Optimizer:
    """The shared part: settings as attributes, checked by their declarations."""

    name = ""
    settings = ()  # this optimizer's own Settings (the learning rate is everyone's)
    default_learning_rate = LEARNING_RATE.default
    state_arrays = 0  # arrays of the parameters' size it keeps between steps (the memory budget)

    def __init__(self, learning_rate=None, **values):
        declared = {s.name: s for s in self.settings}
        unknown = set(values) - set(declared)
        if unknown:
            raise InputError("optimizer", f"{self.name} has no setting {', '.join(sorted(unknown))}; "
                                          f"it takes {', '.join(self.setting_names())}")
        self.learning_rate = LEARNING_RATE.parse(
            self.default_learning_rate if learning_rate is None else learning_rate)
        for setting in self.settings:
            setattr(self, setting.name, setting.parse(values.get(setting.name, setting.default)))

    @classmethod
    def setting_names(cls):
        return ["learning_rate", *(s.name for s in cls.settings)]

    def values(self):
        return {name: getattr(self, name) for name in self.setting_names()}

    def set(self, name, value):
        """Change one setting before the next step; returns the checked value."""
        setting = LEARNING_RATE if name == "learning_rate" else \
            next((s for s in self.settings if s.name == name), None)
        if setting is None:
            raise InputError(name, f"the {self.name} optimizer takes {', '.join(self.setting_names())}")
        value = setting.parse(value)
        setattr(self, name, value)
        return value

    def updates(self, grads):
        raise NotImplementedError


class GradientDescent(Optimizer):
    """The tutorial's rule: W := W - learning_rate * dW."""

    name = "sgd"

    def updates(self, grads):
        lr = self.learning_rate
        return [(lr * dW, lr * db) for dW, db in grads]


class Momentum(Optimizer):
    """Heavy-ball momentum: v := momentum * v + dW;  W := W - learning_rate * v."""

    name = "momentum"
    state_arrays = 1  # the velocity
    settings = (decay_rate("momentum", 0.9, "Momentum", "How much of the last update each step keeps, "
                           "in [0, 1)", owner="momentum"),)

    def __init__(self, learning_rate=None, **values):
        super().__init__(learning_rate, **values)
        self.velocity = None

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


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction."""

    name = "adam"
    default_learning_rate = 0.001
    state_arrays = 2  # the two running means
    settings = (
        decay_rate("beta1", 0.9, "Adam beta1", "Decay of the running mean of gradients, in [0, 1)",
                   owner="adam"),
        decay_rate("beta2", 0.999, "Adam beta2", "Decay of the running mean of squared gradients, "
                   "in [0, 1)", owner="adam"),
        Setting("epsilon", "float", 1e-8, "Adam epsilon", "Added to the root of the squared-gradient "
                "mean so a step never divides by 0", low=0.0, low_open=True, high=1.0, live=True,
                sweep=True, log=True, owner="adam"),
    )

    def __init__(self, learning_rate=None, **values):
        super().__init__(learning_rate, **values)
        self.t = 0
        self.first = None  # running mean of gradients, per layer (for W, for b)
        self.second = None  # running mean of squared gradients

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


def make_optimizer(name, **values):
    if name not in OPTIMIZERS:
        raise InputError("optimizer", f"{name!r} is not one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](**values)


def optimizer_settings():
    """Every optimizer's own settings, each once, in the order the optimizers declare them."""
    found = {}
    for cls in OPTIMIZERS.values():
        for setting in cls.settings:
            found.setdefault(setting.name, setting)
    return [LEARNING_RATE, *found.values()]
