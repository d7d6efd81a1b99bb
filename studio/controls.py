"""The sidebar set-up widgets: they read and write `st.session_state["setup_*"]` and turn the
values into a TrainConfig, or name the field that is wrong (shown right under that widget)."""

import dataclasses
from pathlib import Path

import streamlit as st

from backprop.activations import ACTIVATIONS
from backprop.config import LR_SCHEDULES, PRESET_NOTES, PRESETS, TrainConfig, parse_int_list, preset
from backprop.data import DATASETS, REGISTRY, load_task
from backprop.data.download import is_complete
from backprop.errors import InputError
from backprop.network import DTYPES, INITS
from backprop.optimizers import OPTIMIZERS
from backprop.paths import datasets_dir

DATASET_CHOICES = DATASETS  # mnist (shipped), downloadable sets, then a person's own "idx" / "npz"
USER_DATA = {"idx": "a folder with the four IDX files", "npz": "a .npz file"}
CLASSES = {"emnist-letters": 26}  # every other named set has 10 classes
_user_classes = {}  # (dataset, path, modified time) -> number of classes, so a file is read once
LEARNING_RATES = sorted({float(f"{m}e{e}") for e in range(-5, 1) for m in (1, 2, 5)} | {10.0})
PRESET_LABELS = {"tutorial": "Tutorial: 5 vs 8, [196, 1]",
                 "tutorial-deep": "Tutorial deep: [392, 196, 98, 1]", "mnist10": "10 digits, ReLU + Adam",
                 "custom": "Custom"}


def fill_widgets(config, only_missing=False):
    """Put a set-up into the widgets' session state (before the widgets are drawn). Streamlit
    forgets a widget's state when a run does not draw it (another page, the demo view), so
    `only_missing=True` refills just those keys."""
    state = {} if only_missing else st.session_state
    state["setup_dataset"] = config.dataset if config.dataset in DATASET_CHOICES else "mnist"
    state["setup_data_path"] = config.data_path or ""
    state["setup_lr_schedule"] = config.lr_schedule
    state["setup_digits"] = "all" if config.digits is None else f"{config.digits[0]},{config.digits[1]}"
    state["setup_subset"] = "" if config.subset is None else str(config.subset)
    state["setup_hidden"] = ",".join(str(n) for n in config.layers[:-1])
    state["setup_activation"] = config.activation
    state["setup_init"] = config.init
    state["setup_optimizer"] = config.optimizer
    state["setup_lr"] = config.learning_rate
    state["setup_momentum"] = config.momentum
    state["setup_batch"] = "full" if config.batch_size is None else str(config.batch_size)
    state["setup_l2"] = f"{config.l2:g}"
    state["setup_seed"] = int(config.seed)
    state["setup_dtype"] = config.dtype
    state["setup_iterations"] = int(config.iterations)
    state["setup_eval_every"] = int(config.eval_every)
    state["setup_preset"] = next((name for name, p in PRESETS.items() if p.validated() == config),
                                 "custom")
    if only_missing:
        for key, value in state.items():
            st.session_state.setdefault(key, value)


def _apply_preset():
    name = st.session_state.setup_preset
    if name != "custom":
        fill_widgets(preset(name))


def _hidden_sizes(text):
    text = str(text).strip()
    if text.lower() in ("", "none"):
        return []
    return parse_int_list(text, "hidden layers")


def _add_layer():
    try:
        sizes = _hidden_sizes(st.session_state.setup_hidden)
    except InputError:
        return  # the inline message already says what is wrong
    sizes.append(max(1, sizes[-1] // 2) if sizes else 64)
    st.session_state.setup_hidden = ",".join(map(str, sizes))


def _remove_layer():
    try:
        sizes = _hidden_sizes(st.session_state.setup_hidden)
    except InputError:
        return
    st.session_state.setup_hidden = ",".join(map(str, sizes[:-1]))


def _registry_name(dataset):
    return "emnist" if dataset.startswith("emnist") else dataset


def downloaded(dataset):
    """Whether a data set can be used now: shipped, user files, or a completed download."""
    spec = REGISTRY.get(_registry_name(dataset))
    return spec is None or is_complete(spec, datasets_dir() / spec.folder, verify=False)


def _dataset_label(dataset):
    if dataset in USER_DATA:
        return f"{dataset}: your own data ({USER_DATA[dataset]})"
    return dataset if downloaded(dataset) else f"{dataset} (not downloaded: see the Data page)"


def data_classes(dataset, path):
    """The number of classes of a data choice; raises the loader's InputError for a data set that
    is not downloaded or a path that is missing or not valid data."""
    if not downloaded(dataset):
        raise InputError("dataset", f"{dataset} is not downloaded yet: download it on the Data page "
                                    f"(or `python -m backprop data download {_registry_name(dataset)}`)")
    if dataset not in USER_DATA:
        return CLASSES.get(dataset, 10)
    if not path:
        raise InputError("data_path", f"give the path of {USER_DATA[dataset]}")
    try:
        stamp = Path(path).stat().st_mtime
    except OSError:
        raise InputError("data_path", f"{path} does not exist; give the path of "
                                      f"{USER_DATA[dataset]}") from None
    key = (dataset, path, stamp)
    if key not in _user_classes:
        try:
            _user_classes[key] = load_task(dataset, digits=None, dtype="float32", path=path).n_classes
        except InputError:
            raise
        except Exception as error:  # an unreadable file: still a message, never a traceback
            raise InputError("data_path", f"{path} could not be read as {dataset} data: {error}") from None
    return _user_classes[key]


def output_units(dataset, digits_text, n_classes=None):
    """The output size follows the task: 1 (sigmoid) for two classes, else one per class."""
    two_classes = str(digits_text).strip().lower() not in ("all", "")
    return 1 if two_classes else n_classes or CLASSES.get(dataset, 10)


def setup_sidebar(studio):
    """Draw the set-up widgets; returns (config or None, error or None)."""
    state = st.session_state
    slots = {}

    def slot(field):
        slots[field] = st.empty()

    st.selectbox("Preset", list(PRESET_LABELS), key="setup_preset", format_func=PRESET_LABELS.get,
                 on_change=_apply_preset)
    if state.setup_preset in PRESET_NOTES:
        st.caption(PRESET_NOTES[state.setup_preset])
    st.selectbox("Data set", DATASET_CHOICES, key="setup_dataset", format_func=_dataset_label,
                 help="Downloads and your own files (IDX or .npz) are managed on the Data page")
    if state.setup_dataset in USER_DATA:
        st.text_input("Data path", key="setup_data_path", help=f"The path of {USER_DATA[state.setup_dataset]}"
                      " (the Data page saves uploads under the studio's datasets folder)")
    slot("dataset")
    st.text_input("Classes", key="setup_digits", help="Two classes such as 5,8 (the tutorial), or 'all'")
    slot("digits")
    st.text_input("Training subset", key="setup_subset", help="Empty: every training image; or a "
                  "number of images (stratified) for quick experiments")
    slot("subset")
    st.text_input("Hidden layer sizes", key="setup_hidden", help="Comma-separated, e.g. 392,196,98; "
                  "empty for logistic regression")
    left, right = st.columns(2)
    left.button("Add layer", on_click=_add_layer, use_container_width=True)
    right.button("Remove layer", on_click=_remove_layer, use_container_width=True)
    try:
        n_classes = data_classes(state.setup_dataset, _data_path())
    except InputError:
        n_classes = None  # read_widgets names the problem under the data set
    outputs = output_units(state.setup_dataset, state.setup_digits, n_classes)
    st.caption(f"Output layer: {outputs} unit{'s' if outputs > 1 else ''} "
               f"({'sigmoid' if outputs == 1 else 'softmax'}), set by the task")
    slot("layers")
    st.selectbox("Activation", list(ACTIVATIONS), key="setup_activation")
    slot("activation")
    st.selectbox("Initialisation", list(INITS), key="setup_init", help="\n".join(
        f"- **{k}**: {v}" for k, v in INITS.items()))
    st.selectbox("Optimizer", list(OPTIMIZERS), key="setup_optimizer", help="Applies at the next step")
    lr_options = sorted(set(LEARNING_RATES) | {float(state.setup_lr)})
    st.select_slider("Learning rate (log scale)", lr_options, key="setup_lr", format_func=lambda v: f"{v:g}",
                     help="Applies at the next step; marked on the cost chart")
    st.selectbox("Learning-rate schedule", list(LR_SCHEDULES), key="setup_lr_schedule",
                 help="\n".join(f"- **{k}**: {v}" for k, v in LR_SCHEDULES.items())
                 + "\n\nApplies at the next step; marked on the cost chart")
    slot("learning_rate")
    if state.setup_optimizer == "momentum":
        st.number_input("Momentum", 0.0, 0.999, key="setup_momentum", step=0.05, format="%.3f")
        slot("momentum")
    st.text_input("Batch size", key="setup_batch", help="'full' (the whole training set each step, "
                  "like the tutorial) or a number of images per mini-batch")
    slot("batch_size")
    st.text_input("L2 regularisation", key="setup_l2", help="λ ≥ 0; adds λ/2·Σ‖W‖² to the cost")
    slot("l2")
    st.number_input("Seed", 0, 2**32 - 1, key="setup_seed", step=1)
    slot("seed")
    st.selectbox("Number type", DTYPES, key="setup_dtype")
    st.number_input("Iteration budget", 1, 10**7, key="setup_iterations", step=100)
    slot("iterations")
    st.number_input("Test every N iterations", 1, 10**6, key="setup_eval_every", step=10)
    slot("eval_every")

    try:
        config = read_widgets(studio)
    except InputError as error:
        # data_path and the loader's own fields ("path", ...) are shown under the data set
        target = slots.get(error.field) or slots.get("layers" if "layer" in error.field else "dataset")
        target.error(f"**{error.field}**: {error.message}")
        return None, error
    return config, None


def _data_path():
    state = st.session_state
    path = str(state.get("setup_data_path", "")).strip()
    return path if state.setup_dataset in USER_DATA and path else None


def read_widgets(studio):
    """The widgets' values as a validated TrainConfig (raises InputError naming the field)."""
    state = st.session_state
    subset = str(state.setup_subset).strip()
    hidden = _hidden_sizes(state.setup_hidden)
    base = studio.config
    n_classes = data_classes(state.setup_dataset, _data_path())
    config = dataclasses.replace(
        base if isinstance(base, TrainConfig) else TrainConfig(),
        dataset=state.setup_dataset, data_path=_data_path(), digits=state.setup_digits,
        subset=subset or None,
        layers=hidden + [output_units(state.setup_dataset, state.setup_digits, n_classes)],
        activation=state.setup_activation, init=state.setup_init, optimizer=state.setup_optimizer,
        learning_rate=state.setup_lr, lr_schedule=state.setup_lr_schedule, momentum=state.setup_momentum,
        batch_size=str(state.setup_batch).strip().lower(), l2=str(state.setup_l2).strip(),
        seed=state.setup_seed, dtype=state.setup_dtype, iterations=state.setup_iterations,
        eval_every=state.setup_eval_every)
    if config.subset is not None:
        try:
            config.subset = int(config.subset)
        except ValueError:
            raise InputError("subset", f"{subset!r} is not a whole number of training images") from None
    if config.batch_size in ("full", ""):
        config.batch_size = None
    return config.validated()
