"""A page's set-up widgets: they read and write `st.session_state` under the page's keys and turn
the values into a TrainConfig checked against the page's profile (backprop/profiles.py), or name
the setting that is wrong (shown right under its widget). A `Form` says how a page lays its
profile's settings out: the Train page's sidebar (`SIDEBAR`), or the Playground's TensorFlow
Playground-like bar and panels (`PLAYGROUND_FORM`, drawn by pages/playground.py)."""

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import streamlit as st

from backprop.config import PRESET_NOTES, PRESETS, TrainConfig, parse_int_list, preset
from backprop.config import output_units as config_output_units
from backprop.data import REGISTRY
from backprop.data.download import is_complete
from backprop.data.tasks import nominal_classes
from backprop.errors import InputError
from backprop.paths import datasets_dir
from backprop.profiles import PLAYGROUND, SWEEP, TRAIN, Profile
from backprop.settings import SETTINGS

from .data_files import get_upload, list_uploads
from .url_state import plain as escape_markdown

USER_DATA = {"idx": "a folder with the four IDX files", "npz": "a .npz file"}
PRESET_LABELS = {"tutorial": "Tutorial: 5 vs 8, [196, 1]",
                 "tutorial-deep": "Tutorial deep: [392, 196, 98, 1]", "mnist10": "10 digits, ReLU + Adam",
                 "custom": "Custom"}


PENALTIES = {"l1": "L1", "l2": "L2"}  # a form with one penalty at a time: its kind, then one rate


@dataclass(frozen=True)
class Form:
    """How a page lays out its profile's settings as widgets."""

    profile: Profile
    prefix: str  # a widget's key: the prefix and the setting's name
    keys: Mapping[str, str] = field(default_factory=dict)  # where a setting's key is another
    checkboxes: tuple[str, ...] = ()  # choice lists shown as one checkbox per choice (key_choice)
    presets: bool = False  # the Train page's named presets

    def key(self, name):
        return self.keys.get(name, self.prefix + name)


SIDEBAR = Form(TRAIN, "setup_", {"layers": "setup_hidden"}, presets=True)
PLAYGROUND_FORM = Form(PLAYGROUND, "pg_", {"layers": "pg_hidden", "features": "pg_feature"},
                       checkboxes=("features",))


def widget_key(name, form=SIDEBAR):
    return form.key(name)


def widget_kind(setting, form=SIDEBAR):
    """How a page shows a setting, from its declaration (and the page's form)."""
    if setting.name in form.checkboxes:
        return "checkboxes"
    if form.profile.one_penalty and setting.name in PENALTIES:
        return "penalty"
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


def widget_options(setting, form, current):
    """The values a slider or list offers: the page's own list for the setting, or a grid around its
    default; with the current value (from a link or the CLI) put in its place."""
    listed = form.profile.choices.get(setting.name)
    if listed is None:
        return log_grid(setting, current)
    return list(listed) if current in listed else sorted({*listed, current})


def log_grid(setting, current):
    """1, 2, 5 x powers of ten around the default, within the setting's bounds, and the current value."""
    centre = math.floor(math.log10(setting.default))
    values = {float(f"{m}e{e}") for e in range(centre - 4, centre + 2) for m in (1, 2, 5)}
    values.add(10.0 ** (centre + 2))
    allowed = [v for v in values if (setting.high is None or v <= setting.high)]
    return sorted(set(allowed) | {float(current)})


def shown(setting, state, form=SIDEBAR):
    """Whether a setting applies to the set-up the widgets show now (its optimizer, its data sets)."""
    optimizer = state.get(form.key("optimizer"), form.profile.default("optimizer"))
    if setting.owner is not None and optimizer != setting.owner:
        return False
    if setting.datasets and state.get(form.key("dataset")) not in setting.datasets:
        return False
    return setting.widget and setting.name in form.profile.widgets


def fill_widgets(config, only_missing=False, form=SIDEBAR, profile=None):
    """Put a set-up into a page's widgets' session state (before the widgets are drawn). Streamlit
    forgets a widget's state when a run does not draw it (another page, the demo view), so
    `only_missing=True` refills just those keys. `profile`: the form of that page's profile."""
    if profile is not None:
        form = FORMS[profile.name]
    state = {} if only_missing else st.session_state
    for name in form.profile.widgets:
        setting = form.profile.setting(name)
        kind, value = widget_kind(setting, form), getattr(config, name)
        if kind == "checkboxes":
            for choice in setting.choices:
                state[f"{form.key(name)}_{choice}"] = choice in value
        elif kind != "penalty":
            state[form.key(name)] = widget_value(setting, value)
    if form.profile.one_penalty:
        state[form.prefix + "regularisation"] = next(
            (kind for name, kind in PENALTIES.items() if getattr(config, name)), "None")
        state[form.prefix + "penalty"] = float(config.l1 or config.l2 or 0.0)
    if form.presets:
        state["setup_preset"] = next((name for name, p in PRESETS.items() if p.validated() == config),
                                     "custom")
    if only_missing:
        for key, value in state.items():
            st.session_state.setdefault(key, value)


def _apply_preset():
    name = st.session_state.setup_preset
    if name != "custom":
        fill_widgets(preset(name))


def hidden_sizes(text):
    """The hidden layer sizes a layers widget holds ('392,196,98'; empty: none)."""
    text = str(text).strip()
    if text.lower() in ("", "none"):
        return []
    return parse_int_list(text, "hidden layers")


def _add_layer():
    try:
        sizes = hidden_sizes(st.session_state.setup_hidden)
    except InputError:
        return  # the inline message already says what is wrong
    sizes.append(max(1, sizes[-1] // 2) if sizes else 64)
    st.session_state.setup_hidden = ",".join(map(str, sizes))


def _remove_layer():
    try:
        sizes = hidden_sizes(st.session_state.setup_hidden)
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


def follow_dataset(studio, form=SIDEBAR):
    """A data set widget's on_change: the widgets of the settings that follow the data set (the
    classes; the Playground's number of points), where they showed the old data set's default, show
    the new one's."""
    state, profile = st.session_state, form.profile
    old, new = (studio.pending or studio.config).dataset, state[form.key("dataset")]
    for name in profile.follows_dataset:
        setting = profile.setting(name)
        if name in profile.widgets and state.get(form.key(name)) == widget_value(setting, profile.default(
                name, old)):
            state[form.key(name)] = widget_value(setting, profile.default(name, new))


def _setting_widget(setting, state, studio, form=SIDEBAR):
    key, kind = form.key(setting.name), widget_kind(setting, form)
    helptext = "\n".join([setting.help, *(f"- {line}" for line in setting.choice_help)])
    if setting.name == "dataset":
        st.selectbox(setting.label, setting.choices, key=key, format_func=_dataset_label, help=helptext,
                     on_change=follow_dataset, args=(studio, form))
    elif setting.name == "layers":
        st.text_input("Hidden layer sizes", key=key, help="Comma-separated, e.g. 392,196,98; empty for "
                      "logistic regression")
        left, right = st.columns(2)
        left.button("Add layer", on_click=_add_layer, use_container_width=True)
        right.button("Remove layer", on_click=_remove_layer, use_container_width=True)
        try:
            n_classes = data_classes(state[form.key("dataset")], _chosen_upload(form))
        except InputError:
            n_classes = None  # read_widgets names the problem under the data set
        outputs = output_units(state[form.key("dataset")], state[form.key("digits")], n_classes)
        st.caption(f"Output layer: {outputs} unit{'s' if outputs > 1 else ''} "
                   f"({'sigmoid' if outputs == 1 else 'softmax'}), set by the task")
    elif kind == "select":
        st.selectbox(setting.label, setting.choices, key=key, help=helptext)
    elif kind == "multi":
        st.multiselect(setting.label, setting.choices, key=key, help=helptext)
    elif kind == "upload":
        uploads = {upload.id: upload for upload in list_uploads()
                   if upload.kind == state[form.key("dataset")]}
        if state.get(key) not in uploads:
            state[key] = None
        st.selectbox(setting.label, list(uploads), key=key, format_func=lambda id_: uploads[id_].label(),
                     index=None, placeholder="upload your data on the Data page" if not uploads
                     else "choose an upload", help=helptext + " (a path on the server is only ever "
                     "given at the server, with `backprop train --data-path`)")
    elif kind == "log_slider":
        st.select_slider(setting.label, widget_options(setting, form, state[key]), key=key,
                         format_func=lambda v: f"{v:g}", help=helptext)
    elif kind == "number":
        st.number_input(setting.label, int(setting.low), int(setting.high) if setting.high else None,
                        key=key, step=1, help=helptext)
    else:
        st.text_input(setting.label, key=key, help=helptext)


def setup_sidebar(studio, form=SIDEBAR):
    """Draw one widget per setting of the page's profile that applies; returns (config or None,
    error or None). A bad value's message is shown right under its widget."""
    state = st.session_state
    slots = {}
    st.selectbox("Preset", list(PRESET_LABELS), key="setup_preset", format_func=PRESET_LABELS.get,
                 on_change=_apply_preset)
    if state.setup_preset in PRESET_NOTES:
        st.caption(PRESET_NOTES[state.setup_preset])
    for name in form.profile.widgets:
        setting = form.profile.setting(name)
        if shown(setting, state, form):
            _setting_widget(setting, state, studio, form)
            slots[name] = st.empty()
    try:
        config = read_widgets(studio, form)
    except InputError as error:
        # the loader's own fields ("path", ...) are shown under the data set
        target = slots.get(error.field) or slots.get("layers" if "layer" in error.field else "dataset")
        target.error(f"**{error.field}**: {escape_markdown(error.message)}")
        return None, error
    return config, None


def _chosen_upload(form=SIDEBAR):
    """The upload id chosen in the sidebar (None: none chosen, or not own data)."""
    state = st.session_state
    return state.get(form.key("upload")) if state[form.key("dataset")] in USER_DATA else None


def read_widgets(studio, form=SIDEBAR):
    """The widgets' values on top of the current set-up, as a TrainConfig checked against the page's
    profile (raises InputError naming the setting). The settings the page shows no widget for keep
    their value, and those that follow the data set follow it (profiles.Profile.follow_dataset)."""
    state, profile = st.session_state, form.profile
    current = studio.pending or studio.config
    base = current if isinstance(current, TrainConfig) else profile.default_config()
    values = {}
    for name in profile.widgets:
        setting = profile.setting(name)
        if name == "layers" or not shown(setting, state, form):
            continue
        kind, key = widget_kind(setting, form), form.key(name)
        if kind == "checkboxes":
            values[name] = tuple(choice for choice in setting.choices if state.get(f"{key}_{choice}"))
        elif kind == "penalty":
            chosen = state[form.prefix + "regularisation"] == PENALTIES[name]
            values[name] = float(state[form.prefix + "penalty"]) if chosen else 0.0
        elif key in state:
            values[name] = state[key]
    dataset = values.get("dataset", base.dataset)
    if dataset in profile.datasets:
        base = profile.follow_dataset(base, dataset)
    digits = state[form.key("digits")] if "digits" in values else SETTINGS["digits"].encode(base.digits)
    hidden = hidden_sizes(state[form.key("layers")])
    values["layers"] = hidden + [output_units(dataset, digits, data_classes(dataset, _chosen_upload(form)))]
    values["data_path"] = None  # the app names its data by upload id, never by a typed path
    return profile.check(dataclasses.replace(base, **values))


FORMS = {"train": SIDEBAR, "playground": PLAYGROUND_FORM,
         "sweep": dataclasses.replace(SIDEBAR, profile=SWEEP)}  # a page's form, by its profile's name
