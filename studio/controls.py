"""The sidebar set-up widgets: they read and write `st.session_state["setup_*"]` and turn the
values into a TrainConfig, or name the field that is wrong (shown right under that widget)."""

import dataclasses
import math

import streamlit as st

from backprop.config import PRESET_NOTES, PRESETS, TrainConfig, parse_int_list, preset
from backprop.config import output_units as config_output_units
from backprop.data import REGISTRY
from backprop.data.download import is_complete
from backprop.data.tasks import nominal_classes
from backprop.errors import InputError
from backprop.paths import datasets_dir
from backprop.settings import SETTINGS

from .data_files import get_upload, list_uploads
from .url_state import plain as escape_markdown

USER_DATA = {"idx": "a folder with the four IDX files", "npz": "a .npz file"}
PRESET_LABELS = {"tutorial": "Tutorial: 5 vs 8, [196, 1]",
                 "tutorial-deep": "Tutorial deep: [392, 196, 98, 1]", "mnist10": "10 digits, ReLU + Adam",
                 "custom": "Custom"}


def widget_key(name):
    return "setup_hidden" if name == "layers" else f"setup_{name}"


def widget_kind(setting):
    """How the sidebar shows a setting, from its declaration."""
    if setting.name == "upload":
        return "upload"
    if setting.kind == "choice":
        return "select"
    if setting.kind == "choice_list":
        return "multi"
    if setting.kind == "float" and setting.log:
        return "log_slider"
    if setting.kind == "int" and setting.none_word is None:
        return "number"
    return "text"


def widget_value(setting, value):
    """A setting's value as its widget holds it."""
    kind = widget_kind(setting)
    if setting.name == "layers":
        return ",".join(str(n) for n in value[:-1])  # the hidden sizes; the output follows the task
    if kind == "select":
        return value if value in setting.choices else setting.default
    if kind == "upload":
        return value
    if kind == "multi":
        return list(value)
    if kind == "log_slider":
        return float(value)
    if kind == "number":
        return int(value)
    return setting.encode(value)


def log_grid(setting, current):
    """1, 2, 5 x powers of ten around the default, within the setting's bounds, and the current value."""
    centre = math.floor(math.log10(setting.default))
    values = {float(f"{m}e{e}") for e in range(centre - 4, centre + 2) for m in (1, 2, 5)}
    values.add(10.0 ** (centre + 2))
    allowed = [v for v in values if (setting.high is None or v <= setting.high)]
    return sorted(set(allowed) | {float(current)})


def shown(setting, state):
    """Whether a setting applies to the set-up the widgets show now (its optimizer, its data sets)."""
    if setting.owner is not None and state.get(widget_key("optimizer")) != setting.owner:
        return False
    if setting.datasets and state.get(widget_key("dataset")) not in setting.datasets:
        return False
    return setting.widget


def fill_widgets(config, only_missing=False):
    """Put a set-up into the widgets' session state (before the widgets are drawn). Streamlit
    forgets a widget's state when a run does not draw it (another page, the demo view), so
    `only_missing=True` refills just those keys."""
    state = {} if only_missing else st.session_state
    for name, setting in SETTINGS.items():
        state[widget_key(name)] = widget_value(setting, getattr(config, name))
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


def data_classes(dataset, upload_id):
    """The number of classes of a data choice, known without loading it (an upload's from its record,
    written when the Data page checked it); raises InputError for a data set that is not downloaded
    or an own-data choice without an upload."""
    if not downloaded(dataset):
        raise InputError("dataset", f"{dataset} is not downloaded yet: download it on the Data page "
                                    f"(or `python -m backprop data download {_registry_name(dataset)}`)")
    if dataset not in USER_DATA:
        return nominal_classes(dataset)
    if not upload_id:
        raise InputError("upload", f"choose {USER_DATA[dataset]} you uploaded on the Data page")
    return len(get_upload(upload_id).class_names)


def output_units(dataset, digits_text, n_classes=None):
    """The output size follows the task: 1 (sigmoid) for two classes, else one per class."""
    two_classes = str(digits_text).strip().lower() not in ("all", "")
    return config_output_units(2 if two_classes else n_classes or nominal_classes(dataset))


def _setting_widget(setting, state):
    key, kind = widget_key(setting.name), widget_kind(setting)
    helptext = "\n".join([setting.help, *(f"- {line}" for line in setting.choice_help)])
    if setting.name == "dataset":
        st.selectbox(setting.label, setting.choices, key=key, format_func=_dataset_label, help=helptext)
    elif setting.name == "layers":
        st.text_input("Hidden layer sizes", key=key, help="Comma-separated, e.g. 392,196,98; empty for "
                      "logistic regression")
        left, right = st.columns(2)
        left.button("Add layer", on_click=_add_layer, use_container_width=True)
        right.button("Remove layer", on_click=_remove_layer, use_container_width=True)
        try:
            n_classes = data_classes(state[widget_key("dataset")], _chosen_upload())
        except InputError:
            n_classes = None  # read_widgets names the problem under the data set
        outputs = output_units(state[widget_key("dataset")], state[widget_key("digits")], n_classes)
        st.caption(f"Output layer: {outputs} unit{'s' if outputs > 1 else ''} "
                   f"({'sigmoid' if outputs == 1 else 'softmax'}), set by the task")
    elif kind == "select":
        st.selectbox(setting.label, setting.choices, key=key, help=helptext)
    elif kind == "multi":
        st.multiselect(setting.label, setting.choices, key=key, help=helptext)
    elif kind == "upload":
        uploads = {upload.id: upload for upload in list_uploads()
                   if upload.kind == state[widget_key("dataset")]}
        if state.get(key) not in uploads:
            state[key] = None
        st.selectbox(setting.label, list(uploads), key=key, format_func=lambda id_: uploads[id_].label(),
                     index=None, placeholder="upload your data on the Data page" if not uploads
                     else "choose an upload", help=helptext + " (a path on the server is only ever "
                     "given at the server, with `backprop train --data-path`)")
    elif kind == "log_slider":
        st.select_slider(setting.label, log_grid(setting, state[key]), key=key,
                         format_func=lambda v: f"{v:g}", help=helptext)
    elif kind == "number":
        st.number_input(setting.label, int(setting.low), int(setting.high) if setting.high else None,
                        key=key, step=1, help=helptext)
    else:
        st.text_input(setting.label, key=key, help=helptext)


def setup_sidebar(studio):
    """Draw one widget per setting of the table that applies; returns (config or None, error or
    None). A bad value's message is shown right under its widget."""
    state = st.session_state
    slots = {}
    st.selectbox("Preset", list(PRESET_LABELS), key="setup_preset", format_func=PRESET_LABELS.get,
                 on_change=_apply_preset)
    if state.setup_preset in PRESET_NOTES:
        st.caption(PRESET_NOTES[state.setup_preset])
    for name, setting in SETTINGS.items():
        if shown(setting, state):
            _setting_widget(setting, state)
            slots[name] = st.empty()
    try:
        config = read_widgets(studio)
    except InputError as error:
        # the loader's own fields ("path", ...) are shown under the data set
        target = slots.get(error.field) or slots.get("layers" if "layer" in error.field else "dataset")
        target.error(f"**{error.field}**: {escape_markdown(error.message)}")
        return None, error
    return config, None


def _chosen_upload():
    """The upload id chosen in the sidebar (None: none chosen, or not own data)."""
    state = st.session_state
    return state.get(widget_key("upload")) if state[widget_key("dataset")] in USER_DATA else None


def read_widgets(studio):
    """The widgets' values as a validated TrainConfig (raises InputError naming the field)."""
    state = st.session_state
    values = {name: state[widget_key(name)] for name, setting in SETTINGS.items()
              if widget_key(name) in state and shown(setting, state)}
    hidden = _hidden_sizes(state[widget_key("layers")])
    n_classes = data_classes(state[widget_key("dataset")], _chosen_upload())
    values["layers"] = hidden + [output_units(state[widget_key("dataset")], state[widget_key("digits")],
                                              n_classes)]
    values["data_path"] = None  # the app names its data by upload id, never by a typed path
    base = studio.config if isinstance(studio.config, TrainConfig) else TrainConfig()
    return dataclasses.replace(base, **values).validated()
