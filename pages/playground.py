"""Playground: small 2D problems that train in seconds, with every neuron drawn live.

Laid out like TensorFlow Playground for a projector: the data and the features on the left, the
network in the middle, the output on the right. The network is the engine's own, trained by the
same Studio, controls and status line as the Train page; this page keeps its own Studio
("playground"), so a Train page run survives a visit here. Any change to the data or the network
builds a fresh one at once; the learning rate, regularisation and speed apply at the next step.
"""

import streamlit as st

from backprop.data.toy2d import CLASSIFICATION, FEATURES, REGRESSION
from backprop.profiles import PLAYGROUND
from studio import figures
from studio import playground_figures as pf
from studio.controls import (
    PENALTIES,
    PLAYGROUND_FORM,
    fill_widgets,
    follow_dataset,
    hidden_sizes,
    read_widgets,
    widget_options,
)
from studio.live_plot import live_plot
from studio.refresh import Rate, RefreshRates
from studio.session import get_studio, route_through_app
from studio.widgets import (
    act,
    keep_link_in_step,
    link_problems,
    live,
    setup_from_link,
    status_line,
    training_controls,
)

route_through_app()

# This page's defaults, limits and lists are its profile's (backprop/profiles.py: PLAYGROUND); its
# widgets' keys are its form's (studio/controls.py: PLAYGROUND_FORM).
PROFILE, FORM = PLAYGROUND, PLAYGROUND_FORM
SPEEDS = ["full speed", 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
# The maps must refresh at 5 Hz or more: a period a quarter under 0.2 s (each run and the timer add
# some), unless drawing takes half of it.
RATES = {"maps": Rate(0.15, 0.5), "fast": Rate(0.45, 0.5), "curves": Rate(1.0)}

studio = get_studio("playground")
state = st.session_state
mine = state.setdefault("playground", {})  # this page's own link bookkeeping (not the Train page's)
rates = RefreshRates(RATES, state)


def apply_setup():
    """Take the widgets' set-up: the rate and penalties at the next step; a new network at once
    for anything else (TensorFlow Playground's way)."""
    config = read_widgets(studio, FORM)  # no feature at all: the table's check names "features"
    waiting = studio.propose(config)
    if waiting:
        studio.reset()


def change():
    act(studio, apply_setup)


def change_dataset():
    follow_dataset(studio, FORM)  # e.g. a regression's 1,200 points
    change()


def change_problem():
    names = list(REGRESSION if state.pg_problem == "Regression" else CLASSIFICATION)
    if state.pg_dataset not in names:
        state.pg_dataset = names[0]
    change_dataset()


def regenerate():
    state.pg_seed = (int(state.pg_seed) + 1) % 2**32
    change()


def resize(layer, delta):
    """Add/remove a hidden layer (layer None) or a unit of one; within the page's limits."""
    hidden = hidden_sizes(state.pg_hidden)
    if layer is None:
        if delta > 0 and len(hidden) < PROFILE.max_hidden_layers:
            hidden.append(hidden[-1] if hidden else 2)
        elif delta < 0 and hidden:
            hidden.pop()
    else:
        hidden[layer] = min(PROFILE.max_units, max(1, hidden[layer] + delta))
    state.pg_hidden = ",".join(map(str, hidden))
    change()


def set_speed():
    speed = state.pg_speed
    studio.set_speed(None if speed == SPEEDS[0] else speed)


# -- the set-up: this page's default, then a link, then the widgets ----------------------------
if (studio.pending or studio.config).dataset not in PROFILE.datasets:
    studio.propose(PROFILE.default_config())  # a fresh Studio starts on the tutorial's MNIST set-up
setup_from_link(studio, mine, st.query_params.to_dict(), profile=PROFILE)
if "pg_dataset" not in state:  # Streamlit forgot the widgets on a visit to another page
    fill_widgets(studio.pending or studio.config, form=FORM)
state.pg_problem = "Regression" if state.pg_dataset in REGRESSION else "Classification"
state.setdefault("pg_speed", SPEEDS[0])
act(studio, studio.ensure_built)  # TensorFlow Playground shows the untrained network at once
keep_link_in_step(studio.pending or studio.config, demo=False, profile=PROFILE)

# -- controls ------------------------------------------------------------------------------------
st.title("Playground")
link_problems(studio, mine)
running = studio.running
training_controls(studio, key="pg_")
live(studio, rates, "fast", lambda: status_line(studio.view(), rates))

bar = st.columns([1.2, 1, 1, 1, 1.2, 1, 1.6])
setting = {name: PROFILE.setting(name) for name in PROFILE.widgets}  # with this page's bounds
bar[0].select_slider("Learning rate", widget_options(setting["learning_rate"], FORM, state.pg_learning_rate),
                     key="pg_learning_rate", on_change=change, format_func=lambda v: f"{v:g}")
bar[1].selectbox("Activation", setting["activation"].choices, key="pg_activation",
                 on_change=change, help="The hidden layers' activation")
bar[2].selectbox("Regularisation", ["None", *PENALTIES.values()], key="pg_regularisation", on_change=change,
                 help="L1 adds λ·Σ|W| to the cost, L2 adds λ/2·Σ‖W‖²")
bar[3].selectbox("Regularisation rate", widget_options(setting["l2"], FORM, state.pg_penalty),
                 key="pg_penalty", on_change=change)
bar[4].selectbox("Problem type", ["Classification", "Regression"], key="pg_problem", on_change=change_problem)
bar[5].number_input("Batch size", min_value=int(setting["batch_size"].low),
                    max_value=int(setting["batch_size"].high), step=1, key="pg_batch_size", on_change=change)
bar[6].select_slider("Speed (steps/s)", SPEEDS, key="pg_speed", on_change=set_speed,
                     help="Full speed, or a slow-motion pace for a demo; applies at once")
set_speed()

left, right = st.columns([1, 4.4])
with left:
    st.subheader("Data")
    names = list(REGRESSION if state.pg_problem == "Regression" else CLASSIFICATION)
    if state.pg_dataset not in names:
        state.pg_dataset = names[0]
    descriptions = {**CLASSIFICATION, **REGRESSION}
    st.radio("Data set", names, key="pg_dataset", on_change=change_dataset, help="; ".join(
        f"**{name}**: {descriptions[name]}" for name in names))
    for name, step, about in (("train_share", 10, "The rest are test points"), ("noise", 5, None)):
        st.slider(setting[name].label, int(setting[name].low), int(setting[name].high), step=step,
                  key=FORM.key(name), on_change=change, help=about)
    st.number_input(setting["points"].label, int(setting["points"].low), int(setting["points"].high), step=50,
                    key="pg_points", on_change=change)
    st.number_input(setting["seed"].label, int(setting["seed"].low), int(setting["seed"].high), key="pg_seed",
                    on_change=change, help="Draws the points and the first weights")
    st.button("Regenerate", on_click=regenerate, help="New points (the next seed) and a fresh network",
              use_container_width=True)
    st.subheader("Features")
    for name in setting["features"].choices:
        st.checkbox(FEATURES[name][0], key=f"{FORM.key('features')}_{name}", on_change=change)

with right:
    network_side, output_side = st.columns([2.5, 1.6])
    hidden = hidden_sizes(state.pg_hidden)
    with network_side:
        head = st.columns([1.4, 0.6, 0.6, 3])
        head[0].markdown(f"**{len(hidden)} hidden layer{'s' if len(hidden) != 1 else ''}**")
        head[1].button("+", key="pg_add_layer", on_click=resize, args=(None, 1),
                       disabled=len(hidden) >= PROFILE.max_hidden_layers, help="Add a hidden layer")
        head[2].button("−", key="pg_remove_layer", on_click=resize, args=(None, -1),
                       disabled=not hidden, help="Remove the last hidden layer")
        if hidden:
            units = st.columns(len(hidden))
            for l, size in enumerate(hidden):
                inner = units[l].columns(2)
                inner[0].button("+", key=f"pg_add_unit_{l}", on_click=resize, args=(l, 1),
                                disabled=size >= PROFILE.max_units, help=f"Add a unit to layer {l + 1}")
                inner[1].button("−", key=f"pg_remove_unit_{l}", on_click=resize, args=(l, -1),
                                disabled=size <= 1, help=f"Remove a unit from layer {l + 1}")
                units[l].caption(f"{size} unit{'s' if size != 1 else ''}")
        chosen = [name for name in FEATURES if state[f"{FORM.key('features')}_{name}"]]
        note = pf.linear_note(state.pg_dataset, chosen, hidden, state.pg_activation)
        if note:
            st.info(note)
    with output_side:
        toggles = st.columns(2)
        toggles[0].toggle("Show test data", key="pg_show_test")
        toggles[1].toggle("Discretize output", key="pg_discretize")


def neuron_choices(params):
    """(layer, unit) of every neuron of the network with these parameters, inputs first."""
    sizes = [params[0][0].shape[1]] + [W.shape[0] for W, _ in params]
    return [(layer, unit) for layer, size in enumerate(sizes) for unit in range(size)]


def map_views(was_running):
    view = studio.view()
    if view is None or studio.data is None or studio.data.plane_train is None:
        return
    if was_running and not studio.running:
        st.rerun(scope="app")  # stopped by itself: redraw the buttons
    config = studio.config
    maps = pf.plane_maps(view.params, config.activation, config.output, studio.data.features)
    choices = neuron_choices(view.params)
    if state.get("pg_selected") not in choices:
        state.pg_selected = choices[-1]
    discretize = state.get("pg_discretize", False)
    network_side, output_side = st.columns([2.5, 1.6])
    with network_side:
        live_plot(pf.network_figure(maps, view.params, selected=state.pg_selected, discretize=discretize),
                  key="pg_network")
        st.selectbox("Neuron shown large", choices, key="pg_selected",
                     format_func=lambda choice: pf.node_label(maps.features, *choice, maps.n_layers))
    with output_side:
        live_plot(pf.boundary_figure(maps, studio.data, show_test=state.get("pg_show_test", False),
                                     discretize=discretize, height=380), key="pg_boundary")
        live_plot(pf.neuron_figure(maps, *state.pg_selected, discretize=discretize, height=260),
                  key="pg_neuron")


def curve_views():
    view = studio.view()
    if view is None:
        return
    costs, gradients = st.columns(2)
    with costs:
        live_plot(figures.cost_figure(view, height=280), key="pg_cost")
    with gradients:
        live_plot(figures.gradient_figure(view, height=280), key="pg_gradients")
        note = figures.vanishing_note(view)
        if note:
            st.caption(note)


with right:
    live(studio, rates, "maps", map_views, running)
live(studio, rates, "curves", curve_views)
