"""The table of settings: every setting of a training run, declared once.

`TrainConfig`'s fields, the CLI's options, the sidebar's widgets, a link's query parameters,
validation and what a sweep may vary are all derived from `SETTINGS` (see `setting.Setting`).
Optimizer settings are declared by the optimizers themselves (`optimizers.py`) and joined in
here. To add a setting: declare it below (or in its optimizer) and write the engine code that
uses it.
"""

from .activations import ACTIVATIONS
from .data.tasks import DATASETS
from .data.toy2d import (
    DEFAULT_FEATURES,
    FEATURES,
    MAX_NOISE,
    MAX_POINTS,
    MAX_TRAIN_SHARE,
    MIN_POINTS,
    MIN_TRAIN_SHARE,
    TOY_DATASETS,
)
from .network import DTYPES, INITS
from .optimizers import OPTIMIZERS, optimizer_settings
from .setting import Setting

USER_DATA = ("idx", "npz")  # a person's own files
MAX_UNITS = 4096
MAX_LAYERS = 10
LR_SCHEDULES = {
    "constant": "the learning rate stays as set",
    "cosine": "lr x (1 + cos(pi t / T)) / 2: from lr at step 0 down to 0 at the last step T",
}


def _described(table):
    """(choices, choice_help) from a {name: description} table."""
    return tuple(table), tuple(f"**{name}**: {text}" for name, text in table.items())


_BASE = [
    # -- the task ------------------------------------------------------------------------
    Setting("dataset", "choice", "mnist", "Data set", "mnist (shipped), downloadable sets (see the Data "
            "page or `backprop data`), or your own files: idx or npz", group="task",
            choices=DATASETS, data=True),
    Setting("digits", "classes", (5, 8), "Classes", "Two classes such as 5,8 (the tutorial), or 'all' "
            "for every class (softmax output)", group="task", none_word="all", data=True),
    Setting("subset", "int", None, "Training subset", "Empty: every training image; or a number of "
            "images (stratified, seeded) for quick experiments", group="task", low=2,
            none_word="", data=True),
    # A path on the server: only the person at the server gives one (the CLI); never a link.
    Setting("data_path", "text", None, "Data path", "A folder of IDX files or an .npz file (datasets "
            "idx and npz)", group="task", data=True, url=False, widget=False, datasets=USER_DATA),
    # What a link and the sidebar name instead: a data set uploaded through the Data page, by the id
    # the server gave it (studio/data_files.py keeps it under the studio's own folder).
    Setting("upload", "text", None, "Uploaded data", "A data set uploaded on the Data page",
            group="task", data=True, cli=False, datasets=USER_DATA, pattern="[0-9a-f]{12}",  # uuid hex
            pattern_text="an upload id: 12 hexadecimal digits, as the Data page gives them"),
    # A frozen list of label edits of a data set of files (backprop/data/label_edits.py), by its id.
    Setting("label_edits", "text", None, "Label edits", "The id of label edits made on the Data page "
            "(Suspect labels): excluded images are left out of training, relabelled ones take their new "
            "label; empty: the labels as given", group="task", data=True,
            datasets=tuple(name for name in DATASETS if name not in TOY_DATASETS), pattern="[0-9a-f]{12}",
            pattern_text="a label edits id: 12 hexadecimal digits, as the Data page gives them"),
    # 2D data sets only (circle, xor, gauss, spiral, moons; plane, multi-gauss): see data/toy2d.py
    Setting("points", "int", 500, "Points", "2D data sets: how many points to draw (training and test)",
            group="task", low=MIN_POINTS, high=MAX_POINTS, data=True, datasets=TOY_DATASETS),
    Setting("noise", "int", 0, "Noise (%)", "2D data sets: how much the classes blur, 0 to 50 "
            "percent (up to 80, as TensorFlow Playground takes from a link)",
            group="task", low=0, high=MAX_NOISE, data=True, datasets=TOY_DATASETS),
    Setting("train_share", "int", 50, "Training share (%)", "2D data sets: the percentage of points "
            "used for training; the rest are test points", group="task", low=MIN_TRAIN_SHARE,
            high=MAX_TRAIN_SHARE, data=True, datasets=TOY_DATASETS),
    Setting("features", "choice_list", DEFAULT_FEATURES, "Input features", "2D data sets: what the "
            "network sees of a point (the input size follows)", group="task", choices=tuple(FEATURES),
            data=True, datasets=TOY_DATASETS),
    # -- the network ---------------------------------------------------------------------
    Setting("layers", "int_list", [196, 1], "Layer sizes", "Hidden sizes then the output size, without "
            "the input, e.g. 196,1", group="network", low=1, high=MAX_UNITS, sweep=True),
    Setting("activation", "choice", "sigmoid", "Activation", "The hidden layers' activation",
            group="network", choices=tuple(ACTIVATIONS), sweep=True),
    Setting("init", "choice", "seed", "Initialisation", "How the first weights are drawn",
            group="network", choices=_described(INITS)[0],
            choice_help=_described(INITS)[1], sweep=True),
    Setting("seed", "int", 1, "Seed", "Random seed for the initial weights, the data order and subsets",
            group="network", low=0, high=2**32 - 1, data=True, sweep=True),
    Setting("dtype", "choice", "float64", "Number type", "float64 (exact, like the tutorial) or float32 "
            "(half the memory, faster)", group="network", choices=DTYPES, data=True),
    # -- learning ------------------------------------------------------------------------
    Setting("optimizer", "choice", "sgd", "Optimizer", "Applies at the next step",
            choices=tuple(OPTIMIZERS), live=True, sweep=True),
    *optimizer_settings(),
    Setting("lr_schedule", "choice", "constant", "Learning-rate schedule", "Applies at the next step; "
            "marked on the cost chart", choices=_described(LR_SCHEDULES)[0],
            choice_help=_described(LR_SCHEDULES)[1], live=True, sweep=True),
    Setting("batch_size", "int", None, "Batch size", "'full' (the whole training set each step, like "
            "the tutorial) or a number of samples per mini-batch", low=1, none_word="full",
            sweep=True),
    Setting("l2", "float", 0.0, "L2 regularisation", "λ ≥ 0; adds λ/2·Σ‖W‖² to the cost; applies at "
            "the next step", low=0.0, live=True, sweep=True),
    Setting("l1", "float", 0.0, "L1 regularisation", "λ ≥ 0; adds λ·Σ|W| to the cost (pushes weights to "
            "exactly 0); applies at the next step", low=0.0, live=True, sweep=True),
    Setting("iterations", "int", 1000, "Iteration budget", "Number of training steps", low=1,
            high=10**7, live=True),
    Setting("eval_every", "int", 100, "Test every N iterations", "Evaluate on the test set every N "
            "steps", low=1, live=True),
]

SETTINGS = {setting.name: setting for setting in _BASE}
LIVE = tuple(name for name, s in SETTINGS.items() if s.live)  # apply at the next step
NEEDS_RESET = tuple(name for name, s in SETTINGS.items() if not s.live)
DATA = tuple(name for name, s in SETTINGS.items() if s.data)  # which data are loaded
SWEEPABLE = tuple(name for name, s in SETTINGS.items() if s.sweep)
