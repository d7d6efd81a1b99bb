"""A training set-up as one validated value, and the named presets built from it.

The CLI, the app's sidebar, the URL and checkpoints all speak this one format, so a set-up
made anywhere can be reproduced anywhere.
"""

import dataclasses
from dataclasses import dataclass, field

from .activations import ACTIVATIONS
from .errors import InputError
from .network import DTYPES, INITS
from .optimizers import OPTIMIZERS, check_fraction, check_learning_rate, check_penalty

MAX_UNITS = 4096
LR_SCHEDULES = {
    "constant": "the learning rate stays as set",
    "cosine": "lr x (1 + cos(pi t / T)) / 2: from lr at step 0 down to 0 at the last step T",
}
MAX_LAYERS = 10


def parse_int_list(text, field_name):
    """'196,1' -> [196, 1], with a message naming the field for anything else."""
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [part.strip() for part in str(text).split(",")]
    if not items or items == [""]:
        raise InputError(field_name, "is empty; give whole numbers separated by commas, e.g. 196,1")
    numbers = []
    for item in items:
        try:
            number = int(item)
        except (TypeError, ValueError):
            raise InputError(field_name, f"{item!r} is not a whole number; use e.g. 196,1") from None
        if isinstance(item, float) and item != number:
            raise InputError(field_name, f"{item!r} is not a whole number")
        numbers.append(number)
    return numbers


def parse_digits(text):
    """'5,8' -> (5, 8); 'all' or None -> None (every class)."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("all", "")):
        return None
    digits = parse_int_list(text, "digits")
    if len(digits) != 2 or digits[0] == digits[1]:
        raise InputError("digits", f"give two different classes such as 5,8 (or 'all'), got {text!r}")
    # Labels, not only digits: EMNIST letters and a user's own data go past 9. Whether the data
    # set has them is checked when it is loaded.
    if any(not 0 <= d <= 255 for d in digits):
        raise InputError("digits", f"class labels are whole numbers from 0 to 255, got {text!r}")
    return tuple(digits)


def _positive_int(value, field_name, low=1, high=None):
    try:
        number = int(value)
        if isinstance(value, float) and value != number:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(field_name, f"{value!r} is not a whole number") from None
    if number < low or (high is not None and number > high):
        allowed = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InputError(field_name, f"must be a whole number {allowed}, got {number}")
    return number


@dataclass
class TrainConfig:
    """Everything that defines a training run. `layers` are the tutorial's layers_dims:
    hidden sizes then the output size, without the input (e.g. [196, 1])."""

    dataset: str = "mnist"
    digits: tuple | None = (5, 8)
    subset: int | None = None
    data_path: str | None = None
    layers: list = field(default_factory=lambda: [196, 1])
    activation: str = "sigmoid"
    init: str = "seed"
    seed: int = 1
    dtype: str = "float64"
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    lr_schedule: str = "constant"  # or "cosine" (see LR_SCHEDULES)
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    batch_size: int | None = None  # None: full batch, like the tutorial
    l2: float = 0.0
    iterations: int = 1000
    eval_every: int = 100

    def validated(self):
        """A checked copy; raises InputError naming the first bad field."""
        c = dataclasses.replace(self)
        c.digits = parse_digits(c.digits)
        c.layers = parse_int_list(c.layers, "layers")
        if len(c.layers) > MAX_LAYERS:
            raise InputError("layers", f"at most {MAX_LAYERS} layers, got {len(c.layers)}")
        for size in c.layers:
            if not 1 <= size <= MAX_UNITS:
                raise InputError("layers", f"each layer needs 1 to {MAX_UNITS} units, got {size}")
        want = 1 if c.digits is not None else None
        if want is not None and c.layers[-1] != want:
            raise InputError("layers", f"a two-class task has 1 output unit (sigmoid); end the "
                                       f"layers with 1, got {c.layers[-1]}")
        if c.digits is None and c.layers[-1] < 2:
            raise InputError("layers", "an all-classes task ends with one unit per class, e.g. 10")
        for name, allowed in (("activation", ACTIVATIONS), ("init", INITS), ("dtype", DTYPES),
                              ("optimizer", OPTIMIZERS), ("lr_schedule", LR_SCHEDULES)):
            if getattr(c, name) not in allowed:
                raise InputError(name, f"{getattr(c, name)!r} is not one of {', '.join(allowed)}")
        c.seed = _positive_int(c.seed, "seed", 0, 2**32 - 1)
        c.learning_rate = check_learning_rate(c.learning_rate)
        c.momentum = check_fraction(c.momentum, "momentum")
        c.beta1 = check_fraction(c.beta1, "beta1")
        c.beta2 = check_fraction(c.beta2, "beta2")
        if c.batch_size is None or str(c.batch_size).strip().lower() in ("", "full"):
            c.batch_size = None
        else:
            c.batch_size = _positive_int(c.batch_size, "batch_size")
        c.l2 = check_penalty(c.l2)
        c.iterations = _positive_int(c.iterations, "iterations", 1, 10**7)
        c.eval_every = _positive_int(c.eval_every, "eval_every", 1)
        if c.subset is not None:
            c.subset = _positive_int(c.subset, "subset", 2)
        return c

    @property
    def output(self):
        return "sigmoid" if self.digits is not None else "softmax"

    def optimizer_knobs(self):
        knobs = {"learning_rate": self.learning_rate}
        if self.optimizer == "momentum":
            knobs["momentum"] = self.momentum
        if self.optimizer == "adam":
            knobs.update(beta1=self.beta1, beta2=self.beta2)
        return knobs

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["digits"] = list(self.digits) if self.digits is not None else None
        return d

    @classmethod
    def from_dict(cls, data):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError("config", f"unknown settings: {', '.join(sorted(unknown))}")
        return cls(**data).validated()


PRESETS = {
    "tutorial": TrainConfig(),
    "tutorial-deep": TrainConfig(layers=[392, 196, 98, 1]),
    # Tuned for >= 98% test accuracy in a few seconds on 2 cores: batches of 512 keep the
    # matrix products efficient, and the cosine decay settles Adam into a good minimum.
    "mnist10": TrainConfig(digits=None, layers=[256, 128, 10], activation="relu", init="he",
                           dtype="float32", optimizer="adam", learning_rate=0.004,
                           lr_schedule="cosine", batch_size=512, l2=1e-4, iterations=1500,
                           eval_every=500),
}
PRESET_NOTES = {
    "tutorial": "The tutorial's experiment: MNIST 5 vs 8, [196, 1], sigmoid, lr 0.1, 1000 full-batch steps",
    "tutorial-deep": "The tutorial's deeper [392, 196, 98, 1] sigmoid net: watch the gradients vanish",
    "mnist10": "All 10 digits: [256, 128, 10] ReLU, He init, Adam lr 0.004 with cosine decay, "
               "batches of 512, l2 1e-4, 1500 steps (about 13 epochs), float32",
}


def preset(name):
    if name not in PRESETS:
        raise InputError("preset", f"{name!r} is not one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name]).validated()
