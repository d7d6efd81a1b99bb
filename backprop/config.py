"""A training set-up as one validated value, and the named presets built from it.

`TrainConfig` is derived from the table of settings (`settings.SETTINGS`): one field per
setting, with the setting's default. The CLI, the app's sidebar, the URL and checkpoints all
speak this one format, so a set-up made anywhere can be reproduced anywhere.
"""

import copy
import dataclasses

from .data.tasks import nominal_classes
from .data.toy2d import TOY_DATASETS, is_regression
from .errors import InputError
from .network import EVAL_BLOCK
from .optimizers import OPTIMIZERS
from .settings import DATA, LR_SCHEDULES, MAX_LAYERS, MAX_UNITS, SETTINGS  # noqa: F401 (re-exported)


def parse_int_list(text, field_name):
    """'196,1' -> [196, 1]: whole numbers (their range is the layers setting's, checked with the
    whole set-up), with a message naming `field_name` for anything else."""
    return dataclasses.replace(SETTINGS["layers"], name=field_name, low=None, high=None).parse(text)


def parse_digits(text):
    """'5,8' -> (5, 8); 'all' or None -> None (every class)."""
    return SETTINGS["digits"].parse(text)


def output_units(n_classes):
    """The output layer follows the task: 1 sigmoid unit for two classes, else one per class."""
    return 1 if n_classes == 2 else int(n_classes)


def _validated(self):
    """A checked copy; raises InputError naming the first bad field."""
    values = {name: setting.parse(getattr(self, name)) for name, setting in SETTINGS.items()}
    c = type(self)(**values)
    if c.dataset in TOY_DATASETS and c.digits is not None:  # known without drawing the points
        if is_regression(c.dataset):
            raise InputError("digits", f"{c.dataset} is a regression data set without classes; use 'all'")
        if set(c.digits) != {0, 1}:
            raise InputError("digits", f"{c.dataset} has the classes 0 and 1: give 0,1 or 'all', got "
                                       f"{','.join(map(str, c.digits))}")
    if len(c.layers) > MAX_LAYERS:
        raise InputError("layers", f"at most {MAX_LAYERS} layers, got {len(c.layers)}")
    if c.digits is not None and c.layers[-1] != 1:
        raise InputError("layers", f"a two-class task has 1 output unit (sigmoid); end the "
                                   f"layers with 1, got {c.layers[-1]}")
    if c.output == "linear":
        if c.layers[-1] != 1:
            raise InputError("layers", f"a regression task has 1 output unit (linear); end the layers with "
                                       f"1, got {c.layers[-1]}")
    elif c.digits is None and c.layers[-1] < 2 and nominal_classes(c.dataset) > 2:
        raise InputError("layers", "an all-classes task ends with one unit per class, e.g. 10")
    return c


def _output(self):
    """The output layer and its cost follow the task: linear + squared error for a regression
    data set, sigmoid + cross-entropy for two classes (one unit), softmax + cross-entropy for more."""
    if is_regression(self.dataset):
        return "linear"
    return "sigmoid" if self.digits is not None or self.layers[-1] == 1 else "softmax"


def _optimizer_values(self):
    """The chosen optimizer's settings (its class says which), as keyword arguments for it."""
    return {name: getattr(self, name) for name in OPTIMIZERS[self.optimizer].setting_names()}


def _fit_output(self, n_classes):
    """A copy whose output layer has the task's size (the hidden layers are kept)."""
    return dataclasses.replace(self, layers=[*self.layers[:-1], output_units(n_classes)])


def _check_memory(self, n_features, n_train):
    """Refuse a set-up whose training step would not fit the memory budget (backprop.budget),
    before anything is allocated. Names batch_size when smaller batches would fit, else layers."""
    from .budget import check_training_memory, largest_fitting_batch

    sizes = [int(n_features), *self.layers]
    state = OPTIMIZERS[self.optimizer].state_arrays
    full = self.batch_size is None or self.batch_size >= n_train
    per_step = n_train if full else max(self.batch_size, min(n_train, EVAL_BLOCK))  # or an evaluation
    field = "batch_size" if largest_fitting_batch(sizes, self.dtype, state, most=1) else "layers"
    return check_training_memory(sizes, per_step, self.dtype, state, field=field, full_batch=full)


def _load_data(self, path=None):
    """The Dataset of this set-up, from its settings that choose data (settings.DATA); `path`
    stands for data_path (the files of an upload, which the studio resolves from its id)."""
    from .data import load_task

    arguments = {("path" if name == "data_path" else name): getattr(self, name)
                 for name in DATA if name != "upload"}
    if path is not None:
        arguments["path"] = path
    return load_task(**arguments)


def _to_dict(self):
    """Plain JSON values (tuples as lists); from_dict reads them back to the same config."""
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()}


@classmethod
def _from_dict(cls, data):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise InputError("config", f"unknown settings: {', '.join(sorted(unknown))}")
    return cls(**data).validated()


def _field(setting):
    default = setting.default
    if isinstance(default, (list, dict)):  # a fresh copy per config, as dataclasses require
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default))
    return dataclasses.field(default=default)


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [(name, object, _field(setting)) for name, setting in SETTINGS.items()],
    namespace={"validated": _validated, "output": property(_output), "optimizer_values": _optimizer_values,
               "fit_output": _fit_output, "check_memory": _check_memory, "load_data": _load_data,
               "to_dict": _to_dict,
               "from_dict": _from_dict,
               "__doc__": "Everything that defines a training run, one field per setting of "
                          "`settings.SETTINGS`. `layers` are the tutorial's layers_dims: hidden "
                          "sizes then the output size, without the input (e.g. [196, 1])."})
TrainConfig.__module__ = __name__  # so pickle (Dask, checkpoints) finds it here


PRESETS = {
    "tutorial": TrainConfig(),
    "tutorial-deep": TrainConfig(layers=[392, 196, 98, 1]),
    # Chosen by a sweep (docs/cli-and-api.md, "backprop sweep": learning_rate 0.004/0.006/0.008 x
    # l2 1e-4/5e-4, 1200 steps; every trial 98.34-98.45%): batches of 512 keep the matrix products
    # efficient, and the cosine decay settles Adam into a good minimum.
    "mnist10": TrainConfig(digits=None, layers=[256, 128, 10], activation="relu", init="he",
                           dtype="float32", optimizer="adam", learning_rate=0.006,
                           lr_schedule="cosine", batch_size=512, l2=1e-4, iterations=1200,
                           eval_every=400),
}
PRESET_NOTES = {
    "tutorial": "The tutorial's experiment: MNIST 5 vs 8, [196, 1], sigmoid, lr 0.1, 1000 full-batch steps",
    "tutorial-deep": "The tutorial's deeper [392, 196, 98, 1] sigmoid net: watch the gradients vanish",
    "mnist10": "All 10 digits: [256, 128, 10] ReLU, He init, Adam lr 0.006 with cosine decay, "
               "batches of 512, l2 1e-4, 1200 steps (about 10 epochs), float32",
}


def preset(name):
    if name not in PRESETS:
        raise InputError("preset", f"{name!r} is not one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name]).validated()
