"""Train: set up a network, train it live, and watch why it learns (or does not)."""

import io
from contextlib import nullcontext

import streamlit as st

from studio import diagnostics as diagnosis
from studio import diagnostics_figures, figures
from studio.analysis_figures import unit_health_figure
from studio.controls import fill_widgets, setup_sidebar
from studio.live_plot import live_plot
from studio.projector import enlarge, projector_css, shortcuts
from studio.refresh import TRAIN_PAGE, RefreshRates
from studio.session import get_studio, owner_token, route_through_app
from studio.widgets import (
    act,
    keep_link_in_step,
    link_problems,
    live,
    setup_from_link,
    status_line,
    training_controls,
)

route_through_app()  # a direct link to this page on a fresh server: go through app.py

studio = get_studio()
state = st.session_state
rates = RefreshRates(TRAIN_PAGE, state, owner_token())
diagnostic_rates = RefreshRates(diagnosis.RATES, state, owner_token())

# The view's own widgets. Streamlit forgets a widget's value on a run that does not draw it (a visit
# to another page), so each change is also kept under another name and put back here.
VIEW_WIDGETS = ("demo", "log_y", "show_dW", "heatmap_layer", "histogram_layer", "gradient_measure",
                "sharpness_every", "noise_every")
for name in VIEW_WIDGETS:
    if name not in state and f"kept_{name}" in state:
        state[name] = state[f"kept_{name}"]
for name, value in (("gradient_measure", "mean_abs"), ("sharpness_every", diagnosis.DEFAULT_SHARPNESS_EVERY),
                    ("noise_every", diagnosis.DEFAULT_NOISE_EVERY)):
    state.setdefault(name, value)  # the view's defaults, before its widgets are drawn


def keep(name):
    state[f"kept_{name}"] = state[name]


# -- the set-up: from the URL on a session's first run, then from the widgets ------------------
demo_from_link = setup_from_link(studio, state, st.query_params.to_dict())
if demo_from_link is not None:
    state.demo = state.kept_demo = demo_from_link
demo = state.get("demo", False)
candidate = None
if not demo:
    fill_widgets(studio.pending or studio.config, only_missing=True)
    with st.sidebar:
        st.header("Set-up")
        candidate, setup_error = setup_sidebar(studio)
    if candidate is not None:
        act(studio, studio.propose, candidate)
        state.setup_seen = studio.pending or studio.config
keep_link_in_step(candidate or studio.pending or studio.config, demo)

# -- controls -----------------------------------------------------------------------------------
if demo:  # projector mode: no title, large text, the essential views on one screen
    projector_css()
else:
    st.title("Train")
# What the run measures off its training thread (a run a button just built included).
diagnosis.configure(studio, state["sharpness_every"], state["noise_every"])


# Why training is failing, measured: at the top of the page. Drawn by the page, not by a fragment
# of its own (one more rerun a second for a banner that rarely changes): the status fragment reruns
# the page when the banner to show changes.
state.banner_shown = diagnosis.banner(studio)
if state.banner_shown is not None:
    getattr(st, state.banner_shown.kind)(state.banner_shown.text)
link_problems(studio, state)
running = studio.running
training_controls(studio, extra=lambda: st.toggle(
    "Demo view", key="demo", on_change=keep, args=("demo",),
    help="Hide the set-up and enlarge the charts for a projector"))

shortcuts(legend=not demo)
# The demo view fits status, cost, weights and gradients on one 1280x720 screen, side by side.
height = 400 if demo else 300  # each line chart
heatmap_side = 360 if demo else 520  # the weight image and the paused heatmap: the same square
big = enlarge if demo else (lambda figure: figure)


# -- live views: one fragment per refresh rate --------------------------------------------------
def fast_views(was_running):
    view = studio.view()
    if was_running and not studio.running:
        st.rerun(scope="app")  # training stopped by itself (budget, divergence): redraw the buttons
    if diagnosis.banner(studio) != state.get("banner_shown"):
        st.rerun(scope="app")  # a divergence explained, or its explanation changed: the banner at the top
    with st.container(key="status_line"):
        status_line(view, rates)
    if not demo:  # the demo view draws it in its column below
        cost_view()


def cost_view():
    view = studio.view()
    if view is None:  # the chart's room, kept before the first step: the page below does not move
        st.container(height=height, border=False)
        return
    live_plot(big(figures.cost_figure(view, log_y=state.get("log_y", False), height=height)),
              key="cost_chart")


def heatmap_view(is_running):
    view = studio.view()
    if view is None:
        return
    layer_names = [f"W{l + 1}" for l in range(len(view.params))]
    shown = state.get("heatmap_layer", "W1")
    l = layer_names.index(shown) if shown in layer_names else 0
    if state.get("show_dW", False):
        grads = studio.gradients(max_samples=2000 if is_running else None)
        matrix, name = grads[l][0], f"dW{l + 1}"
    else:
        matrix, name = view.params[l][0], f"W{l + 1}"
    limit = figures.symmetric_limit(matrix)
    st.caption(f"**{name}**, colour ±{limit:.3g}: blue < 0 < red. "
               + ("Pause to hover over a weight." if is_running else "Hover to read a weight."))
    if is_running:  # an image is far cheaper to send and draw than a live heatmap
        image = figures.weights_image(matrix, view.image_shape, limit, heatmap_side)
        st.html(figures.image_html(image, heatmap_side, alt=f"{name} while training"))
    else:
        st.plotly_chart(big(figures.weights_heatmap(matrix, view.image_shape, name=name, limit=limit,
                                                    height=heatmap_side)), key="weights_heatmap",
                        width=heatmap_side + figures.HEATMAP_COLOURBAR)


def gradient_views():
    view = studio.view()
    if view is None:
        return
    measure = state.get("gradient_measure") or "mean_abs"
    found = figures.vanishing_layer(view)
    figure = figures.gradient_figure(view, height=height, measure=measure,
                                     highlight=found[0] if found else None)
    if demo:
        enlarge(figure, title="Gradient size per layer")
    live_plot(figure, key="gradient_chart")
    note = figures.vanishing_note(view, measure)
    if note and not demo:
        st.caption(note)
    if demo:
        return  # the essential views only
    live_plot(figures.ratio_figure(view, height=height), key="ratio_chart")
    live_plot(unit_health_figure(view.iterations, view.unit_health, view.activation, height=height),
              key="unit_health_chart")
    reading = diagnosis.health_line(view, studio.config)
    if reading:
        st.caption(reading)


def histogram_views():
    view = studio.view()
    if view is None:
        return
    l = int(state.get("histogram_layer", 0))
    if l >= len(view.params):
        l = 0
    initial = view.initial_params[l][0] if view.initial_params else None
    columns = st.columns(2)
    with columns[0]:
        live_plot(figures.histogram_figure(view.params[l][0], initial, name=f"W{l + 1}"),
                  key="weight_histogram")
    grads = studio.gradients(max_samples=2000)
    initial_grads = studio.initial_gradients(max_samples=2000)
    with columns[1]:
        live_plot(figures.histogram_figure(grads[l][0], initial_grads[l][0], name=f"dW{l + 1}"),
                  key="gradient_histogram")


n_layers = studio.trainer.network.n_layers if studio.trainer is not None else len(studio.config.layers)
layer_names = [f"W{l + 1}" for l in range(n_layers)]
if state.get("heatmap_layer") not in layer_names:  # a kept layer the new network does not have
    state.heatmap_layer = layer_names[0]
if not demo:  # the view's options; the demo view keeps what they were set to
    options = st.columns([1, 1, 1, 3])
    options[0].toggle("Log-scale cost", key="log_y", on_change=keep, args=("log_y",))
    options[3].segmented_control(
        "Gradient chart", list(figures.GRADIENT_MEASURES), key="gradient_measure",
        format_func=lambda m: {"mean_abs": "mean |dW| (per weight)", "norm": "‖dW‖ (whole layer)"}[m],
        label_visibility="collapsed", on_change=keep, args=("gradient_measure",),
        help="Per weight, layers compare fairly; a whole layer's norm grows with its number of weights")
    options[1].toggle("Show dW instead of W", key="show_dW", on_change=keep, args=("show_dW",))
    options[2].selectbox("Heatmap layer", layer_names, key="heatmap_layer", label_visibility="collapsed",
                         on_change=keep, args=("heatmap_layer",))
with nullcontext() if demo else st.container(height=height + 60, border=False):  # same room before a step
    live(studio, rates, "fast", fast_views, running)
if demo:
    cost_side, left, right = st.columns([1.25, 1, 1.25])
    with cost_side:
        live(studio, rates, "fast", cost_view)  # the status line's rate
else:
    left, right = st.columns([3, 2])
# Fixed-height boxes: the views take the same room before the first step as while training, so the
# first Train moves nothing below them (the Export expander stayed 1,250 px lower after it).
with left, nullcontext() if demo else st.container(height=heatmap_side + 80, border=False):
    live(studio, rates, "heatmap", heatmap_view, running)
with right, nullcontext() if demo else st.container(height=3 * height + 150, border=False):
    live(studio, rates, "gradients", gradient_views)


def stability_views():
    """λ_max against the optimizer's stability limit, and the gradient noise scale next to the batch."""
    measured = diagnosis.diagnostics_view(studio)
    every = state.get("sharpness_every")
    live_plot(diagnostics_figures.sharpness_figure(measured, height=height, every=every),
              key="sharpness_chart")
    for line in (diagnostics_figures.sharpness_text(measured), diagnostics_figures.noise_text(measured)):
        if line:
            st.caption(line)
    if measured is not None and measured.error:
        st.caption(f"A measurement failed: {measured.error}")


if not demo:  # the essential views only in the demo view
    st.subheader("Stability and batch size", help="Measured off the training thread: the top eigenvalue of "
                 "the cost's Hessian (λ_max) against the largest one the optimizer is stable for at this "
                 "learning rate, and the gradient noise scale B_simple, about the batch size past which "
                 "larger batches stop cutting the steps needed")
    cadences = st.container(height=75, border=False).columns([1, 1, 2])
    cadences[0].selectbox("λ_max", diagnosis.SHARPNESS_CHOICES, key="sharpness_every",
                          format_func=diagnosis.every_label, on_change=keep, args=("sharpness_every",))
    cadences[1].selectbox("Gradient noise scale", diagnosis.NOISE_CHOICES, key="noise_every",
                          format_func=diagnosis.every_label, on_change=keep, args=("noise_every",))
    with st.container(height=height + 110, border=False):
        live(studio, diagnostic_rates, "stability", stability_views)

if not demo:  # drawn before the network is built too: the first Train moves nothing
    histograms = st.expander("Weight and gradient histograms, now vs at initialisation",
                             key="histograms_open", on_change="rerun")
    # Only while open: charts in a closed expander are still drawn, at a cost.
    if histograms.open and studio.trainer is not None:
        with histograms:
            if state.get("histogram_layer", 0) >= studio.trainer.network.n_layers:
                state.histogram_layer = 0
            st.selectbox("Layer", range(studio.trainer.network.n_layers), key="histogram_layer",
                         format_func=lambda l: f"layer {l + 1}", on_change=keep, args=("histogram_layer",))
            live(studio, rates, "histograms", histogram_views)


# -- export and import --------------------------------------------------------------------------
def load_uploaded():
    upload = state.get("checkpoint_upload")
    if upload is not None:
        studio.restore_checkpoint(io.BytesIO(upload.getvalue()))
        fill_widgets(studio.config)


if not demo:
    with st.expander("Export and import"):
        columns = st.columns(3)
        built = studio.trainer is not None
        columns[0].download_button("History (CSV)", studio.history_csv, file_name="history.csv",
                                   mime="text/csv", disabled=not built, on_click="ignore")
        columns[1].download_button("Network (.npz)", studio.checkpoint_bytes if built else b"",
                                   file_name="network.npz", disabled=not built or running,
                                   on_click="ignore", help="Pause first to export the network")
        columns[2].file_uploader("Continue from a checkpoint (.npz)", type=["npz"], key="checkpoint_upload",
                                 on_change=act, args=(studio, load_uploaded))
