"""Train: set up a network, train it live, and watch why it learns (or does not)."""

import csv
import io
import tempfile
import time
from pathlib import Path

import streamlit as st

from backprop.errors import InputError
from studio import figures
from studio.controls import fill_widgets, setup_sidebar
from studio.live_plot import live_plot
from studio.session import active_training_threads, get_studio, max_training_threads, route_through_app
from studio.url_state import config_to_query, describes_setup, query_to_config

route_through_app()  # a direct link to this page on a fresh server: go through app.py

# Live views: (base refresh period in seconds, share of it drawing may take before the period is
# lengthened anyway). Status + cost chart must refresh at least twice a second and the heatmap
# once, so their periods sit 10% under 0.5 s and 1 s (a timer tick can come late), unless drawing
# takes half their period; gradients (2 s) and histograms (5 s) slow down past 10% (RENDER_SHARE).
REFRESH = {"fast": (0.45, 0.5), "heatmap": (0.9, 0.5), "gradients": (2.0, None), "histograms": (5.0, None)}
RENDER_SHARE = 0.10

studio = get_studio()
state = st.session_state

# The view's own widgets. Streamlit forgets a widget's value on a run that does not draw it (a visit
# to another page), so each change is also kept under another name and put back here.
VIEW_WIDGETS = ("demo", "log_y", "show_dW", "heatmap_layer", "histogram_layer")
for name in VIEW_WIDGETS:
    if name not in state and f"kept_{name}" in state:
        state[name] = state[f"kept_{name}"]


def keep(name):
    state[f"kept_{name}"] = state[name]


# -- the set-up: from the URL on a session's first run, then from the widgets ------------------
if "setup_loaded" not in state:
    params = st.query_params.to_dict()
    config, demo, problems = query_to_config(params)
    if describes_setup(params):  # a plain link keeps what another page may have proposed already
        studio.propose(config)
    fill_widgets(studio.pending or studio.config)
    state.demo = state.kept_demo = demo
    state.setup_loaded = True
    state.setup_seen = studio.pending or studio.config
    if problems:
        state.url_problems = problems
        state.url_problems_for = state.setup_seen
elif state.get("setup_seen") != (studio.pending or studio.config):
    # Changed elsewhere (the Data page's propose, Compare's "Load into the Train page"): show it.
    fill_widgets(studio.pending or studio.config)
    state.setup_seen = studio.pending or studio.config


def act(action, *args):
    """Run a control's action; a bad value becomes a message, never a traceback."""
    try:
        action(*args)
    except InputError as error:
        studio.message = ("error", f"**{error.field}**: {error.message}")
    except Exception as error:  # e.g. a data set that cannot be loaded
        studio.message = ("error", f"{type(error).__name__}: {error}")


demo = state.get("demo", False)
candidate = None
if not demo:
    fill_widgets(studio.pending or studio.config, only_missing=True)
    with st.sidebar:
        st.header("Set-up")
        candidate, setup_error = setup_sidebar(studio)
    if candidate is not None:
        try:
            studio.propose(candidate)
        except InputError as error:
            st.sidebar.error(f"**{error.field}**: {error.message}")
        state.setup_seen = studio.pending or studio.config
    query = config_to_query(candidate or studio.pending or studio.config, demo=demo)
else:
    query = config_to_query(studio.pending or studio.config, demo=True)
if st.query_params.to_dict() != query:
    st.query_params.from_dict(query)

# -- controls -----------------------------------------------------------------------------------
st.title("Train")
if state.get("url_problems") and state.get("url_problems_for") == (studio.pending or studio.config):
    for problem in state.url_problems:  # shown until dismissed or until the set-up changes
        st.warning(f"Ignored from the link: {problem}")
    st.button("Dismiss", key="dismiss_url_problems", on_click=state.pop, args=("url_problems",))
else:
    state.pop("url_problems", None)

running = studio.running
buttons = st.columns([1, 1, 1, 1, 1, 2])
buttons[0].button("Train", type="primary", on_click=act, args=(studio.train,), disabled=running,
                  use_container_width=True)
buttons[1].button("Pause", on_click=act, args=(studio.pause,), disabled=not running,
                  use_container_width=True)
buttons[2].button("Step", on_click=act, args=(studio.step, 1), use_container_width=True)
buttons[3].button("Step ×10", on_click=act, args=(studio.step, 10), use_container_width=True)
buttons[4].button("Reset", on_click=act, args=(studio.reset,), use_container_width=True)
buttons[5].toggle("Demo view", key="demo", on_change=keep, args=("demo",),
                  help="Hide the set-up and enlarge the charts for a projector")

if studio.pending is not None:
    changed = [name for name in ("dataset", "digits", "subset", "layers", "activation", "init", "seed",
                                 "dtype", "batch_size")
               if getattr(studio.pending, name) != getattr(studio.config, name)]
    st.info(f"Set-up changed ({', '.join(changed)}): press **Reset** to build the new network. "
            "The current one keeps training until then.")
if studio.message is not None:
    kind, text = studio.message
    getattr(st, kind)(text)
if not running and studio.trainer is None and active_training_threads() >= max_training_threads():
    st.warning(f"The server is training {active_training_threads()} networks, its limit; Train will "
               "wait for one of them to stop.")

height = 560 if demo else 300  # each line chart
heatmap_side = 640 if demo else 520  # the weight image and the paused heatmap: the same square


def period(name):
    """The view's refresh period now: its base, lengthened when drawing it takes too long."""
    base, keep_base_up_to = REFRESH[name]
    return figures.refresh_period(base, state.get(f"render_seconds_{name}", 0.0), RENDER_SHARE,
                                  keep_base_up_to)


def live(name, draw, *args):
    """Draw a view in a fragment that refreshes while training, timing each draw (server side);
    when the right period moves far from the one in use, rerun the page to apply it."""
    in_use = period(name) if running else None

    def timed():
        started = time.perf_counter()
        draw(*args)
        seconds = time.perf_counter() - started
        key = f"render_seconds_{name}"
        state[key] = seconds if key not in state else 0.8 * state[key] + 0.2 * seconds
        if in_use is not None and studio.running and not 2 / 3 < period(name) / in_use < 1.5:
            st.rerun(scope="app")

    st.fragment(timed, run_every=in_use)()


# -- live views: one fragment per refresh rate --------------------------------------------------
def fast_views(was_running):
    view = studio.view()
    if was_running and not studio.running:
        st.rerun(scope="app")  # training stopped by itself (budget, divergence): redraw the buttons
    st.markdown(f"**{figures.status_text(view)}**", help="iteration · epoch · speed · time spent "
                "training · last cost · last test accuracy. While training, the charts refresh every "
                + ", ".join(f"{period(name):.1f} s" for name in REFRESH)
                + " (status and cost, weights, gradients, histograms; slower when drawing takes long)")
    if view is None:
        return
    live_plot(figures.cost_figure(view, log_y=state.get("log_y", False), height=height), key="cost_chart")


def heatmap_view(is_running):
    view = studio.view()
    if view is None:
        return
    layer_names = [f"W{l + 1}" for l in range(len(view["params"]))]
    shown = state.get("heatmap_layer", "W1")
    l = layer_names.index(shown) if shown in layer_names else 0
    if state.get("show_dW", False):
        grads = studio.gradients(max_samples=2000 if is_running else None)
        matrix, name = grads[l][0], f"dW{l + 1}"
    else:
        matrix, name = view["params"][l][0], f"W{l + 1}"
    limit = figures.symmetric_limit(matrix)
    st.caption(f"**{name}**, colour ±{limit:.3g}: blue < 0 < red. "
               + ("Pause to hover over a weight." if is_running else "Hover to read a weight."))
    if is_running:  # an image is far cheaper to send and draw than a live heatmap
        image = figures.weights_image(matrix, view["image_shape"], limit, heatmap_side)
        st.html(figures.image_html(image, heatmap_side, alt=f"{name} while training"))
    else:
        st.plotly_chart(figures.weights_heatmap(matrix, view["image_shape"], name=name, limit=limit,
                                                height=heatmap_side), key="weights_heatmap",
                        width=heatmap_side + figures.HEATMAP_COLOURBAR)


def gradient_views():
    view = studio.view()
    if view is None:
        return
    live_plot(figures.gradient_figure(view, height=height), key="gradient_chart")
    note = figures.vanishing_note(view)
    if note:
        st.caption(note)
    live_plot(figures.ratio_figure(view, height=height), key="ratio_chart")


def histogram_views():
    view = studio.view()
    if view is None:
        return
    l = int(state.get("histogram_layer", 0))
    if l >= len(view["params"]):
        l = 0
    initial = view["initial_params"][l][0] if view["initial_params"] else None
    columns = st.columns(2)
    with columns[0]:
        live_plot(figures.histogram_figure(view["params"][l][0], initial, name=f"W{l + 1}"),
                  key="weight_histogram")
    grads = studio.gradients(max_samples=2000)
    initial_grads = studio.initial_gradients(max_samples=2000)
    with columns[1]:
        live_plot(figures.histogram_figure(grads[l][0], initial_grads[l][0], name=f"dW{l + 1}"),
                  key="gradient_histogram")


options = st.columns([1, 1, 1, 3])
options[0].toggle("Log-scale cost", key="log_y", on_change=keep, args=("log_y",))
options[1].toggle("Show dW instead of W", key="show_dW", on_change=keep, args=("show_dW",))
n_layers = studio.trainer.network.n_layers if studio.trainer is not None else len(studio.config.layers)
layer_names = [f"W{l + 1}" for l in range(n_layers)]
if state.get("heatmap_layer") not in layer_names:  # a kept layer the new network does not have
    state.heatmap_layer = layer_names[0]
options[2].selectbox("Heatmap layer", layer_names, key="heatmap_layer", label_visibility="collapsed",
                     on_change=keep, args=("heatmap_layer",))
live("fast", fast_views, running)
left, right = st.columns([3, 2] if not demo else [1, 1])
with left:
    live("heatmap", heatmap_view, running)
with right:
    live("gradients", gradient_views)

if studio.trainer is not None and not demo:
    histograms = st.expander("Weight and gradient histograms, now vs at initialisation",
                             key="histograms_open", on_change="rerun")
    if histograms.open:  # only while open: charts in a closed expander are still drawn, at a cost
        with histograms:
            if state.get("histogram_layer", 0) >= studio.trainer.network.n_layers:
                state.histogram_layer = 0
            st.selectbox("Layer", range(studio.trainer.network.n_layers), key="histogram_layer",
                         format_func=lambda l: f"layer {l + 1}", on_change=keep, args=("histogram_layer",))
            live("histograms", histogram_views)


# -- export and import --------------------------------------------------------------------------
def history_csv():
    rows = studio.trainer.history.rows() if studio.trainer is not None else []
    evaluations = {e["iteration"]: e for e in (studio.trainer.history.evaluations if rows else [])}
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=[*rows[0], "test_cost", "test_accuracy"])
        writer.writeheader()
        for row in rows:
            evaluation = evaluations.get(row["iteration"] + 1, {})
            writer.writerow({**row, "test_cost": evaluation.get("test_cost"),
                             "test_accuracy": evaluation.get("test_accuracy")})
    return out.getvalue()


def checkpoint_bytes():
    from backprop.checkpoint import save_checkpoint

    trainer = studio.trainer
    with trainer.lock:
        network, history = trainer.network.copy(), trainer.history
        with tempfile.TemporaryDirectory() as folder:
            path = save_checkpoint(Path(folder) / "network.npz", network, config=studio.config,
                                   history=history)
            return Path(path).read_bytes()


def load_uploaded():
    from backprop.checkpoint import load_checkpoint

    upload = state.get("checkpoint_upload")
    if upload is None:
        return
    checkpoint = load_checkpoint(io.BytesIO(upload.getvalue()))
    config = checkpoint.config or studio.config
    studio.restore(config, checkpoint.network.params, checkpoint.history)
    fill_widgets(studio.config)


if not demo:
    with st.expander("Export and import"):
        columns = st.columns(3)
        built = studio.trainer is not None
        columns[0].download_button("History (CSV)", history_csv, file_name="history.csv", mime="text/csv",
                                   disabled=not built, on_click="ignore")
        columns[1].download_button("Network (.npz)", checkpoint_bytes if built else b"",
                                   file_name="network.npz", disabled=not built or running,
                                   on_click="ignore", help="Pause first to export the network")
        columns[2].file_uploader("Continue from a checkpoint (.npz)", type=["npz"], key="checkpoint_upload",
                                 on_change=act, args=(load_uploaded,))
