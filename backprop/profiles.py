"""What each page makes of the one table of settings: its defaults, its limits and its choice lists.

The table (`settings.SETTINGS`) says what a setting is; a page's `Profile` says which of them the
page takes, the values it starts from and the bounds it keeps to. The Train page's profile is the
table's own defaults (the tutorial's experiment); the Playground's is TensorFlow Playground's. A
page's widgets (studio/controls.py), its links (studio/url_state.py) and the check of its set-up
all read its profile, so a link opened on a page means that page's set-up, within that page's
limits, and a link a page writes carries only what differs from that page's defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .config import TrainConfig
from .data.tasks import DATASETS
from .data.toy2d import CLASSIFICATION, MAX_POINTS, REGRESSION, TOY_DATASETS
from .errors import InputError
from .setting import _short
from .settings import MAX_LAYERS, MAX_UNITS, SETTINGS


@dataclass(frozen=True, eq=False)
class Profile:
    """One page's view of the table of settings (every name here is a setting of the table)."""

    name: str  # the page: "train", "playground", "sweep"
    title: str  # how a message names the page: "the Playground"
    settings: tuple[str, ...]  # the table's settings this page takes, from its widgets and its links
    defaults: Mapping[str, object] = field(default_factory=dict)  # over the table's defaults
    dataset_defaults: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # per data set
    shown: tuple[str, ...] | None = None  # the settings it has widgets for (None: every one that has)
    datasets: tuple[str, ...] = DATASETS  # the data sets it trains
    datasets_text: str = ""  # what those are, in words, for a message ("the 2D data sets")
    max_hidden_layers: int = MAX_LAYERS - 1
    max_units: int = MAX_UNITS  # per hidden layer
    full_batch: bool = True  # batch_size may be 'full' (the whole training set each step)
    max_batch_size: int | None = None
    one_penalty: bool = False  # L1 or L2, not both (TensorFlow Playground's "regularization")
    choices: Mapping[str, tuple] = field(default_factory=dict)  # the page's lists for some settings
    demo: bool = False  # its links may ask for the demo view
    other_names: Mapping[str, str] = field(default_factory=dict)  # another tool's key -> ours, for hints
    # The page's controls a link may hide (`<name>_hide=1`, TensorFlow Playground's `*_hide`), name ->
    # label: a setting's name for its widget, else the control's own (a button, a toggle).
    hidable: Mapping[str, str] = field(default_factory=dict)
    page_keys: tuple[str, ...] = ()  # other link keys the page reads itself (not settings)

    def __post_init__(self):
        for name in ("defaults", "dataset_defaults", "choices", "other_names", "hidable"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        object.__setattr__(self, "dataset_defaults", MappingProxyType(
            {dataset: MappingProxyType(dict(values)) for dataset, values in self.dataset_defaults.items()}))
        named = [*self.settings, *self.defaults, *self.choices, *(self.shown or ()),
                 *(name for values in self.dataset_defaults.values() for name in values)]
        unknown = sorted(set(named) - set(SETTINGS))
        if unknown:
            raise ValueError(f"profile {self.name}: {', '.join(unknown)} not in the table of settings")
        if not set(self.datasets) <= set(SETTINGS["dataset"].choices) or not set(self.dataset_defaults) \
                <= set(self.datasets):
            raise ValueError(f"profile {self.name}: data sets outside the table's or the page's")

    # -- defaults ------------------------------------------------------------------------------
    def default(self, name, dataset=None):
        """This page's default for a setting, on `dataset` (None: the page's default data set)."""
        dataset = self.defaults.get("dataset", SETTINGS["dataset"].default) if dataset is None else dataset
        for source in (self.dataset_defaults.get(dataset, {}), self.defaults):
            if name in source:
                return source[name]
        return SETTINGS[name].default

    def default_config(self, dataset=None):
        """This page's set-up for a data set (None: its default one), validated."""
        dataset = self.default("dataset") if dataset is None else dataset
        values = {name: self.default(name, dataset) for name in SETTINGS if name != "dataset"}
        return TrainConfig(dataset=dataset, **values).validated()

    def config(self, **values):
        """This page's default set-up with `values` (a link's) put in; checked (InputError names
        the first setting that is wrong)."""
        base = self.default_config(values.get("dataset"))
        return self.check(dataclasses.replace(base, **values))

    @property
    def follows_dataset(self):
        """The settings whose default depends on the data set (the 2D sets' classes, ...)."""
        varying = {name for values in self.dataset_defaults.values() for name in values}
        return tuple(name for name in SETTINGS if name in varying)

    def follow_dataset(self, config, dataset):
        """`config` on another data set: each setting whose default depends on the data set, and
        that was at the old data set's default, takes the new one's (the classes 5,8 of MNIST become
        the classes 0,1 of the spiral; the Playground's 500 points become 1,200 for a regression)."""
        changes = {name: self.default(name, dataset) for name in self.follows_dataset
                   if getattr(config, name) == self.default(name, config.dataset)}
        return dataclasses.replace(config, dataset=dataset, **changes)

    # -- the page's settings and limits -----------------------------------------------------------
    @property
    def link_settings(self):
        """The settings a link may carry on this page (never a path on the server)."""
        return tuple(name for name in self.settings if SETTINGS[name].url)

    @property
    def widgets(self):
        """The settings this page draws a widget for."""
        shown = self.settings if self.shown is None else self.shown
        return tuple(name for name in shown if SETTINGS[name].widget)

    def setting(self, name):
        """The table's setting with this page's default and bounds (for widgets and help)."""
        setting = dataclasses.replace(SETTINGS[name], default=self.default(name))
        if name == "dataset":
            return dataclasses.replace(setting, choices=self.datasets)
        if name == "batch_size":
            return dataclasses.replace(setting, none_word=setting.none_word if self.full_batch else None,
                                       high=self.max_batch_size if self.max_batch_size else setting.high)
        return setting

    def parse(self, name, value):
        """A value for one of this page's settings (text from a link, or typed), checked by the table
        and then by this page's limits; raises InputError naming the setting."""
        if name not in self.settings:
            raise InputError(_short(str(name), 40), self.not_a_setting(name))
        parsed = SETTINGS[name].parse(value)
        self.check_value(name, parsed)
        return parsed

    def check_value(self, name, value):
        """Raise InputError if one parsed value is outside this page's limits."""
        if name == "dataset" and value not in self.datasets:
            what = f"{self.datasets_text}: " if self.datasets_text else ""
            raise InputError(name, f"{self.title} trains {what}{', '.join(self.datasets)}; got {value}")
        if name == "layers":
            hidden = list(value[:-1])
            if len(hidden) > self.max_hidden_layers:
                raise InputError(name, f"{self.title} takes at most {self.max_hidden_layers} hidden layers, "
                                       f"got {len(hidden)}")
            if hidden and max(hidden) > self.max_units:
                raise InputError(name, f"{self.title} takes at most {self.max_units} units per hidden "
                                       f"layer, got {max(hidden)}")
        if name == "batch_size":
            if value is None and not self.full_batch:
                raise InputError(name, f"{self.title} trains on mini-batches, not the whole training set "
                                       f"at once: give a whole number from 1 to "
                                       f"{self.max_batch_size or 'the training set size'}")
            if value is not None and self.max_batch_size is not None and value > self.max_batch_size:
                raise InputError(name, f"{self.title} takes batches of at most {self.max_batch_size}, "
                                       f"got {value}")

    def check(self, config):
        """A set-up checked by the table (config.validated) and then by this page's limits; raises
        InputError naming the first setting that is wrong."""
        config = config.validated()
        for name in ("dataset", "layers", "batch_size"):
            self.check_value(name, getattr(config, name))
        if self.one_penalty and config.l1 and config.l2:
            raise InputError("l2", f"{self.title} applies one penalty at a time, L1 or L2; l1 is set "
                                   f"({config.l1:g})")
        return config

    def hide_key(self, name):
        """The link key that hides a control: `learning_rate_hide`."""
        return f"{name}{HIDE_SUFFIX}"

    def not_a_setting(self, key):
        """The message for a link's key that this page does not take."""
        key = str(key)
        if key in self.other_names:
            hint = f" ({self.other_names[key]})"
        elif key in SETTINGS and SETTINGS[key].url:
            hint = " (a setting of the Train page)"
        elif key.endswith(HIDE_SUFFIX) and self.hidable:
            return f"not a control this page can hide; it hides {', '.join(self.hidable)} (name_hide=1)"
        else:
            hint = ""
        return f"not a setting of this page{hint}; settings: {', '.join(self.link_settings)}"


HIDE_SUFFIX = "_hide"


def _each(names, **values):
    return {name: values for name in names}


# A 2D data set has the classes 0 and 1, or (a regression) none: its classes follow the data set.
_TWO_D_CLASSES = {**_each(CLASSIFICATION, digits=(0, 1)), **_each(REGRESSION, digits=None)}

TRAIN = Profile("train", "the Train page", tuple(SETTINGS), dataset_defaults=_TWO_D_CLASSES, demo=True)

# Sweeps start from the Train page's defaults (a base set-up chosen on the page sets the rest).
SWEEP = Profile("sweep", "the Sweep page", tuple(SETTINGS), dataset_defaults=_TWO_D_CLASSES)

# TensorFlow Playground's defaults and limits: 4 and 2 tanh units on the circle, Xavier weights,
# learning rate 0.03, batches of 10, 500 points for a classification and 1,200 for a regression
# (its NUM_SAMPLES_CLASSIFY and NUM_SAMPLES_REGRESS), up to 6 hidden layers of up to 8 units, and
# training until paused.
PLAYGROUND = Profile(
    "playground", "the Playground",
    settings=("dataset", "digits", "points", "noise", "train_share", "features", "layers", "activation",
              "init", "seed", "learning_rate", "batch_size", "l2", "l1", "iterations", "eval_every"),
    shown=("dataset", "points", "noise", "train_share", "features", "layers", "activation", "seed",
           "learning_rate", "batch_size", "l2", "l1"),
    defaults={"dataset": "circle", "layers": [4, 2, 1], "activation": "tanh", "init": "xavier",
              "learning_rate": 0.03, "batch_size": 10, "points": 500,
              "iterations": SETTINGS["iterations"].high, "eval_every": 25},
    dataset_defaults={**_TWO_D_CLASSES, **_each(REGRESSION, digits=None, points=1200)},
    datasets=TOY_DATASETS, datasets_text="the 2D data sets",
    max_hidden_layers=6, max_units=8, full_batch=False, max_batch_size=MAX_POINTS, one_penalty=True,
    choices={"learning_rate": (0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
             "l1": (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
             "l2": (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)},
    other_names={  # TensorFlow Playground's link keys
        "networkShape": "TensorFlow Playground's networkShape is layers here, with the output: "
                        "networkShape=4,2 is layers=4,2,1",
        "learningRate": "TensorFlow Playground's learningRate is learning_rate here",
        "batchSize": "TensorFlow Playground's batchSize is batch_size here",
        "percTrainData": "TensorFlow Playground's percTrainData is train_share here",
        "regularization": "TensorFlow Playground's regularization is l1 or l2 here, e.g. l2=0.01",
        "regularizationRate": "TensorFlow Playground's regularizationRate is l1 or l2 here, e.g. l2=0.01",
        "regDataset": "TensorFlow Playground's regDataset is dataset here: plane or multi-gauss",
        "problem": "the problem type follows the data set here",
        **dict.fromkeys(("x", "y", "xTimesY", "xSquared", "ySquared", "sinX", "sinY", "cosX", "cosY"),
                        "TensorFlow Playground's inputs are features here, e.g. features=x1,x2,sinx1"),
        "hideText": "TensorFlow Playground's hideText is text_hide=1 here",
        "tutorial": "TensorFlow Playground's tutorial is lesson here",
    },
    # Every control of the page, as TensorFlow Playground's HIDABLE_CONTROLS (and the ones it lacks).
    hidable={
        "train": "Train / Pause", "step": "Step", "step_epoch": "Step epoch", "reset": "Reset",
        "learning_rate": "Learning rate", "activation": "Activation", "regularisation": "Regularisation",
        "regularisation_rate": "Regularisation rate", "problem": "Problem type", "batch_size": "Batch size",
        "speed": "Speed", "dataset": "Which data set", "train_share": "Ratio of training data",
        "noise": "Noise", "points": "Points", "seed": "Seed", "regenerate": "Regenerate",
        "features": "Features", "layers": "Hidden layers and units (+ / −)",
        "edit": "Typing a weight or a bias", "show_test": "Show test data", "discretize": "Discretize output",
        "builder": "Link for my class",
    },
    page_keys=("lesson", "text_hide"),  # a guided lesson (studio/lessons.py); no captions or notes
)

PROFILES = {profile.name: profile for profile in (TRAIN, PLAYGROUND, SWEEP)}
