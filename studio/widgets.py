"""Widgets that more than one page draws the same way: the training controls and status line, a
live view that refreshes while training, and keeping the set-up and the link in step."""

import time

import streamlit as st

from backprop.errors import InputError
from backprop.profiles import TRAIN
from backprop.scheduler import foreground
from backprop.threads import active_training_threads, max_training_threads

from . import figures
from .controls import fill_widgets
from .url_state import config_to_query, describes_setup, plain, query_to_config


def act(studio, action, *args):
    """Run a control's action; a bad value becomes a message, never a traceback."""
    try:
        action(*args)
    except InputError as error:
        studio.message = ("error", f"**{error.field}**: {plain(error.message)}")
    except Exception as error:  # e.g. a data set that cannot be loaded
        studio.message = ("error", f"{type(error).__name__}: {plain(error)}")


def training_controls(studio, key="", extra=None):
    """Train / Pause / Step / Step ×10 / Reset, then the studio's messages. `extra(column)` may
    draw one more widget in the row's last, wider column (the Train page's demo toggle)."""
    running = studio.running
    buttons = st.columns([1, 1, 1, 1, 1, 2])
    buttons[0].button("Train", type="primary", on_click=act, args=(studio, studio.train), disabled=running,
                      use_container_width=True, key=f"{key}train")
    buttons[1].button("Pause", on_click=act, args=(studio, studio.pause), disabled=not running,
                      use_container_width=True, key=f"{key}pause")
    buttons[2].button("Step", on_click=act, args=(studio, studio.step, 1), use_container_width=True,
                      key=f"{key}step")
    buttons[3].button("Step ×10", on_click=act, args=(studio, studio.step, 10), use_container_width=True,
                      key=f"{key}step10")
    buttons[4].button("Reset", on_click=act, args=(studio, studio.reset), use_container_width=True,
                      key=f"{key}reset")
    if extra is not None:
        with buttons[5]:
            extra()
    waiting = studio.waiting_settings()
    if waiting:
        st.info(f"Set-up changed ({', '.join(waiting)}): press **Reset** to build the new network. "
                "The current one keeps training until then.")
    if studio.message is not None:
        kind, text = studio.message
        getattr(st, kind)(text)
    if not running and studio.trainer is None and active_training_threads() >= max_training_threads():
        st.warning(f"The server is training {active_training_threads()} networks, its limit; Train will "
                   "wait for one of them to stop.")


def status_line(view, rates=None):
    """The bold one-line status (iteration, epoch, speed, time, cost, test accuracy)."""
    about = ("iteration · epoch · speed · time spent training · last cost · last test accuracy.")
    if rates is not None:
        about += (" While training, the charts refresh every " + rates.describe()
                  + " (slower when drawing takes long)")
    st.markdown(f"**{figures.status_text(view)}**", help=about)


# Streamlit fades an element whose rerun has not reached it within ~0.5 s. A live view's fragment
# reruns every 0.45-2 s, and on a busy machine (3 busy processes beside a 2-core run) the cost chart
# was faded in 26 of 251 frames: a flicker. Live views redraw in place, so they stay opaque. And
# Streamlit's running icon and top decoration, which animate on every one of those reruns, are not
# drawn: the status line says what trains, and the browser's share of the 2 cores went down with
# them (benchmarks/bench_app.py, app / training loop 0.76 -> 0.78, with the slower gradient and
# stability views and the banner drawn by the page: 0.74 -> 0.78).
STEADY_LIVE_VIEWS = """<style>
[data-testid="stElementContainer"][data-stale="true"]:has(iframe[title="studio.live_plot.live_plot"]),
[data-testid="stElementContainer"][data-stale="true"]:has(img[alt$="while training"]),
.st-key-status_line [data-stale="true"] { opacity: 1 !important; transition: none !important; }
[data-testid="stStatusWidgetRunningIcon"], [data-testid="stDecoration"] { display: none !important; }
</style>"""


def steady_live_views():
    """Once per page run (app.py): live views never fade while they wait for their refresh."""
    st.html(STEADY_LIVE_VIEWS)


def live(studio, rates, name, draw, *args):
    """Draw a view in a fragment that refreshes while training, timing each draw (server side);
    when the right period moves far from the one in use, rerun the page to apply it."""
    in_use = rates.period(name) if studio.running else None

    def timed():
        started, cpu = time.perf_counter(), time.thread_time()
        with foreground():  # the training pool waits meanwhile (backprop.scheduler)
            draw(*args)
        rates.record(name, time.perf_counter() - started, time.thread_time() - cpu)
        if in_use is not None and studio.running and rates.apply_now(name, in_use):
            st.rerun(scope="app")

    st.fragment(timed, run_every=in_use)()


def setup_from_link(studio, state, params, fill=None, profile=TRAIN):
    """On a session's first run, take the set-up from the link, read against the page's profile (a
    bare link keeps what another page proposed already), and fill the widgets; later, refill them
    when another page changed the set-up (the Data page's propose, Compare's "Load into the Train
    page"). `fill(config)` puts a set-up into the page's widgets (default: the profile's own
    widgets). Returns the demo flag the link asked for on the first run, else None."""
    if fill is None:
        def fill(config):
            fill_widgets(config, profile=profile)
    current = studio.pending or studio.config
    if "setup_loaded" not in state:
        config, demo, problems = query_to_config(params, profile)
        if describes_setup(params, profile):
            studio.propose(config)
        current = studio.pending or studio.config
        fill(current)
        state["setup_loaded"] = True
        state["setup_seen"] = current
        if problems:
            state["url_problems"] = problems
            state["url_problems_for"] = current
        return demo
    if state.get("setup_seen") != current:
        fill(current)
        state["setup_seen"] = current
    return None


def link_problems(studio, state):
    """What the link asked for that was refused, shown until dismissed or the set-up changes."""
    if state.get("url_problems") and state.get("url_problems_for") == (studio.pending or studio.config):
        for problem in state["url_problems"]:
            st.warning(f"Ignored from the link: {plain(problem)}")
        st.button("Dismiss", key="dismiss_url_problems", on_click=state.pop, args=("url_problems",))
    else:
        state.pop("url_problems", None)


def keep_link_in_step(config, demo, profile=TRAIN):
    """Write the set-up (and the demo flag) into the address bar, only when it changed: what
    differs from the page's defaults (its profile's)."""
    query = config_to_query(config, demo=demo, profile=profile)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
