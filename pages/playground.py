"""Playground: small 2D problems that train in seconds, with every neuron drawn live.

Laid out like TensorFlow Playground: the data and the features on the left, the network in the
middle, the output on the right, and played like it: hover a neuron and the big map shows it, click
a feature in the graph to choose it, click a weight's dot or a bias square to type a new value
(applied at the next step), Step one epoch, Regenerate new points for the same network, the
training and test loss per epoch. The network is the engine's own, trained by the same Studio as
the Train page; this page keeps its own Studio ("playground"), so a Train page run survives a visit
here. Any change to the data or the network builds a fresh one at once; the learning rate,
regularisation and speed apply at the next step.

A link sets the page up (its profile's settings) and may hide any control (`<control>_hide=1`),
show no text (`text_hide=1`) or open a guided lesson (`lesson=xor`); "Lessons and classroom links"
writes such links.
"""

import dataclasses

import streamlit as st

from backprop.data.toy2d import CLASSIFICATION, FEATURES, NOISE_SLIDER, REGRESSION
from backprop.errors import InputError
from backprop.profiles import PLAYGROUND
from studio import figures, projector
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
from studio.lessons import LESSONS, lesson_link
from studio.live_plot import live_plot
from studio.playground_run import epoch_view, regenerate_points, set_parameter, step_epoch, watch_epochs
from studio.projector import projector_css, shortcuts
from studio.refresh import Rate, RefreshRates
from studio.session import (
    active_training_threads,
    get_studio,
    max_training_threads,
    owner_token,
    route_through_app,
)
from studio.url_state import (
    Classroom,
    classroom_from_query,
    classroom_link,
    config_to_query,
    demo_from_query,
    describes_setup,
    plain,
)
from studio.widgets import act, link_problems, live, setup_from_link, status_line

route_through_app()

# This page's defaults, limits and lists are its profile's (backprop/profiles.py: PLAYGROUND); its
# widgets' keys are its form's (studio/controls.py: PLAYGROUND_FORM).
PROFILE, FORM = PLAYGROUND, PLAYGROUND_FORM
SPEEDS = ["full speed", 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
# The maps must refresh at 5 Hz or more: a period a quarter under 0.2 s (each run and the timer add
# some), unless drawing takes half of it.
RATES = {"maps": Rate(0.15, 0.5), "fast": Rate(0.45, 0.5), "curves": Rate(1.0)}
STILL = {"displayModeBar": False}  # charts to point at and click, not to zoom or save

studio = get_studio("playground")
state = st.session_state
mine = state.setdefault("playground", {})  # this page's own link bookkeeping (not the Train page's)
rates = RefreshRates(RATES, state, owner_token())


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
    """New points (the next seed) for the same network (TensorFlow Playground's Regenerate)."""
    state.pg_seed = (int(state.pg_seed) + 1) % 2**32
    act(studio, lambda: regenerate_points(studio, read_widgets(studio, FORM)))


def resize(layer, delta):
    """Add/remove a hidden layer (layer None: a new one has 2 units, as in TensorFlow Playground)
    or a unit of one; within the page's limits."""
    hidden = hidden_sizes(state.pg_hidden)
    if layer is None:
        if delta > 0 and len(hidden) < PROFILE.max_hidden_layers:
            hidden.append(2)
        elif delta < 0 and hidden:
            hidden.pop()
    else:
        hidden[layer] = min(PROFILE.max_units, max(1, hidden[layer] + delta))
    state.pg_hidden = ",".join(map(str, hidden))
    change()


def set_speed():
    speed = state.get("pg_speed", SPEEDS[0])
    studio.set_speed(None if speed == SPEEDS[0] else speed)


def classroom() -> Classroom:
    return mine.get("classroom") or Classroom()


def shows(control):
    return classroom().shows(control)


def pick_dataset():
    """A click on a data set's thumbnail."""
    event = state.get("pg_datasets") or {}
    names = REGRESSION if state.pg_problem == "Regression" else CLASSIFICATION
    if event.get("event") == "click" and event.get("id") in names and event["id"] != state.pg_dataset:
        state.pg_dataset = event["id"]
        change_dataset()


def graph_event():
    """What a person did on the network graph: hover a neuron (the big map shows it), click one
    (it stays there; a feature is chosen or dropped), type a weight or a bias."""
    event = state.get("pg_network") or {}
    kind, target = event.get("event"), event.get("id")
    node = pf.parse_node_id(target)
    units = pf.parse_resize_id(target)
    if kind == "click" and units is not None and shows("layers"):
        if units[0] < len(hidden_sizes(state.pg_hidden)):
            resize(*units)
            mine["rerun_app"] = True  # a new network: the page's set-up and link follow
    elif kind == "hover" and node is not None:
        mine["hovered"] = node
    elif kind == "unhover" and mine.get("hovered") == node:
        mine["hovered"] = None
    elif kind == "click" and node is not None and node[0] == "feature":
        if shows("features"):
            act(studio, toggle_feature, node[1])
            mine["rerun_app"] = True  # the check boxes (refilled from the set-up) and the notes follow
    elif kind == "click" and node is not None:
        mine["pinned"] = None if mine.get("pinned") == node else node
    elif kind == "edit" and shows("edit"):
        try:
            marker = set_parameter(studio, target, event.get("value"))
            mine["last_edit"] = (f"{marker['setting']} = {marker['new']:g} (was {marker['old']:g}): "
                                 "applied at the next step")
        except InputError as error:
            mine["last_edit"] = f"**{error.field}**: {plain(error.message)}"


def toggle_feature(name):
    """Choose or drop a feature clicked in the graph: a new network at once. The set-up changes, not
    the check boxes' state (this runs in the graph's fragment, outside of which the check boxes are
    drawn): the next full run fills them from the set-up."""
    config = studio.pending or studio.config
    chosen = set(config.features) ^ {name}
    if studio.propose(PROFILE.check(dataclasses.replace(
            config, features=tuple(feature for feature in FEATURES if feature in chosen)))):
        studio.reset()


def close_lesson():
    mine["classroom"] = Classroom(classroom().hidden, classroom().text_hidden, None)


# -- the set-up: this page's default, then a link, then the widgets ----------------------------
params = st.query_params.to_dict()
# The demo view (projector mode) is this page's own flag, not a set-up setting: `demo=1` opens it.
if "pg_demo" not in state:
    state.pg_demo = mine.get("demo", demo_from_query(params))
mine["demo"] = demo = state.pg_demo
params.pop("demo", None)
if (studio.pending or studio.config).dataset not in PROFILE.datasets:
    studio.propose(PROFILE.default_config())  # a fresh Studio starts on the tutorial's MNIST set-up
first_run = "setup_loaded" not in mine
setup_from_link(studio, mine, params, profile=PROFILE)
if first_run:
    room, problems = classroom_from_query(params, PROFILE)
    mine["classroom"] = room
    if room.lesson and not describes_setup(params, PROFILE):  # `?lesson=xor`: the lesson's set-up
        act(studio, lambda: studio.propose(LESSONS[room.lesson].config()) and studio.reset())
        fill_widgets(studio.pending or studio.config, form=FORM)
        mine["setup_seen"] = studio.pending or studio.config
    if problems:
        mine["url_problems"] = [*mine.get("url_problems", []), *problems]
        mine["url_problems_for"] = studio.pending or studio.config
room = classroom()
text = room.text
# Streamlit forgets a widget's state when a run does not draw it (a hidden control): put it back.
fill_widgets(studio.pending or studio.config, only_missing=True, form=FORM)
state.pg_problem = "Regression" if state.pg_dataset in REGRESSION else "Classification"
state.setdefault("pg_speed", SPEEDS[0])
act(studio, studio.ensure_built)  # TensorFlow Playground shows the untrained network at once
watch_epochs(studio)  # the training and test loss at the end of every epoch, from the first
query = config_to_query(studio.pending or studio.config, profile=PROFILE, classroom=room)
if demo:
    query["demo"] = "1"
if st.query_params.to_dict() != query:  # the link says the set-up, the lesson and what is hidden
    st.query_params.from_dict(query)

# -- the lesson, the controls --------------------------------------------------------------------
if demo:  # projector mode: the data, the network and the output on one screen, text large
    projector_css()
else:
    st.title("Playground")
# What comes and goes (warnings, the lesson, messages) sits in containers that are always there, so
# the live charts below keep their place in the page and stay mounted.
with st.container():
    link_problems(studio, mine)
with st.container():
    if room.lesson and text:
        lesson = LESSONS[room.lesson]
        with st.container(border=True):
            top = st.columns([6, 1])
            top[0].markdown(f"**Lesson: {lesson.title}**")
            top[1].button("Close", key="pg_close_lesson", on_click=close_lesson, help="Close the lesson")
            st.markdown("\n".join(f"{i}. {line}" for i, line in enumerate(lesson.lines, start=1)))

running = studio.running


def row(widths, last=None):
    """Columns for the controls a link did not hide, in order (a hidden one leaves no gap), and
    one more of width `last` if given: {control: column}."""
    shown = {name: width for name, width in widths.items() if shows(name)}
    columns = st.columns([*shown.values(), *([last] if last else [])] or [1])
    return dict(zip([*shown, *(["last"] if last else [])], columns, strict=False))


buttons = row({"train": 2, "step": 1, "step_epoch": 1.2, "reset": 1}, last=3.2)
if "train" in buttons:
    play, pause = buttons["train"].columns(2)
    play.button("Train", type="primary", on_click=act, args=(studio, studio.train), disabled=running,
                use_container_width=True, key="pg_train")
    pause.button("Pause", on_click=act, args=(studio, studio.pause), disabled=not running,
                 use_container_width=True, key="pg_pause")
if "step" in buttons:
    buttons["step"].button("Step", on_click=act, args=(studio, studio.step, 1), use_container_width=True,
                           key="pg_step", help="One mini-batch")
if "step_epoch" in buttons:
    buttons["step_epoch"].button("Step epoch", on_click=act, args=(studio, step_epoch, studio),
                                 use_container_width=True, key="pg_step_epoch", help="One epoch: every "
                                 "training point once (TensorFlow Playground's step), ceil(training points / "
                                 "batch size) steps")
if "reset" in buttons:
    buttons["reset"].button("Reset", on_click=act, args=(studio, studio.reset), use_container_width=True,
                            key="pg_reset")
with st.container():
    if studio.message is not None:
        kind, message = studio.message
        getattr(st, kind)(message)
    if not running and studio.trainer is None and active_training_threads() >= max_training_threads():
        st.warning(f"The server is training {active_training_threads()} networks, its limit; Train will "
                   "wait for one of them to stop.")
with buttons["last"]:
    with st.container(key="pg_status_line"):  # large in the demo view (studio/projector.py's CSS)
        live(studio, rates, "fast", lambda: status_line(studio.view(), rates))
    st.toggle("Demo view", key="pg_demo",
              help="Only the data, the network and the output, large, for a projector")
shortcuts(legend=not demo and text)  # text-free (text_hide=1): no legend either

setting = {name: PROFILE.setting(name) for name in PROFILE.widgets}  # with this page's bounds
bar = {} if demo else row({"learning_rate": 1.15, "activation": 0.95, "regularisation": 1.05,
                           "regularisation_rate": 1.3, "problem": 1.15, "batch_size": 0.85, "speed": 1.3})
if "learning_rate" in bar:
    rates_offered = widget_options(setting["learning_rate"], FORM, state.pg_learning_rate)
    bar["learning_rate"].select_slider("Learning rate", rates_offered, key="pg_learning_rate",
                                       on_change=change, format_func=lambda v: f"{v:g}")
if "activation" in bar:
    bar["activation"].selectbox("Activation", setting["activation"].choices, key="pg_activation",
                                on_change=change, help="The hidden layers' activation")
if "regularisation" in bar:
    bar["regularisation"].selectbox("Regularisation", ["None", *PENALTIES.values()], key="pg_regularisation",
                                    on_change=change)
if "regularisation_rate" in bar:
    bar["regularisation_rate"].selectbox("Regularisation rate", widget_options(setting["l2"], FORM,
                                                                               state.pg_penalty),
                                         key="pg_penalty", on_change=change)
if "problem" in bar:
    bar["problem"].selectbox("Problem type", ["Classification", "Regression"], key="pg_problem",
                             on_change=change_problem)
if "batch_size" in bar:
    bar["batch_size"].number_input("Batch size", min_value=int(setting["batch_size"].low),
                                   max_value=int(setting["batch_size"].high), step=1, key="pg_batch_size",
                                   on_change=change)
if "speed" in bar:
    bar["speed"].select_slider("Speed (steps/s)", SPEEDS, key="pg_speed", on_change=set_speed,
                               help="Full speed, or a slow-motion pace for a demo; applies at once")
set_speed()

left, right = st.columns([1.05, 4.4])
with left:
    regression = state.pg_problem == "Regression"
    names = list(REGRESSION if regression else CLASSIFICATION)
    if state.pg_dataset not in names:
        state.pg_dataset = names[0]
    if shows("dataset"):
        live_plot(pf.dataset_figure(regression, state.pg_dataset, height=130 if regression else 150),
                  key="pg_datasets", events=True, on_event=pick_dataset, config=STILL)
        descriptions = {**CLASSIFICATION, **REGRESSION}
        st.selectbox("Data set", names, key="pg_dataset", on_change=change_dataset, help="; ".join(
            f"**{name}**: {descriptions[name]}" for name in names))
    if shows("train_share") and not demo:
        share = setting["train_share"]
        st.slider("Ratio of training data (%)", int(share.low), int(share.high), step=10,
                  key=FORM.key("train_share"), on_change=change, help="The rest are test points")
    if shows("noise") and not demo:  # up to 50, or a link's value up to 80 (TensorFlow Playground's slider)
        st.slider(setting["noise"].label, 0, max(NOISE_SLIDER, int(state.pg_noise)), step=5,
                  key=FORM.key("noise"), on_change=change)
    if shows("points") and not demo:
        st.number_input(setting["points"].label, int(setting["points"].low), int(setting["points"].high),
                        step=50, key="pg_points", on_change=change)
    if shows("seed") and not demo:
        st.number_input(setting["seed"].label, int(setting["seed"].low), int(setting["seed"].high),
                        key="pg_seed", on_change=change, help="Draws the points and the first weights")
    if shows("regenerate") and not demo:
        st.button("Regenerate", key="pg_regenerate", on_click=regenerate, use_container_width=True,
                  help="New points (the next seed) for the same network, as TensorFlow Playground does")
    if shows("features"):
        st.markdown("**Features**")
        boxes = st.columns(2)
        for i, name in enumerate(setting["features"].choices):
            boxes[i % 2].checkbox(FEATURES[name][0], key=f"{FORM.key('features')}_{name}", on_change=change)

COLUMNS = [2.6, 1.5]  # the network, the output: the header row and the live row line up
with right:
    network_side, output_side = st.columns(COLUMNS)
    hidden = hidden_sizes(state.pg_hidden)
    with network_side:
        row = st.container(horizontal=True, vertical_alignment="center", gap="small")
        if shows("layers"):
            row.button("+", key="pg_add_layer", on_click=resize, args=(None, 1),
                       disabled=len(hidden) >= PROFILE.max_hidden_layers,
                       help="Add a hidden layer of 2 units")
            row.button("−", key="pg_remove_layer", on_click=resize, args=(None, -1), disabled=not hidden,
                       help="Remove the last hidden layer")
        row.markdown(f"**{len(hidden)} hidden layer{'s' if len(hidden) != 1 else ''}**")
        chosen = [name for name in FEATURES if state.get(f"{FORM.key('features')}_{name}")]
        note = pf.linear_note(state.pg_dataset, chosen, hidden, state.pg_activation)
        if note and text:
            st.info(note)
    with output_side:
        toggles = st.columns(2)
        if shows("show_test"):
            toggles[0].toggle("Test data", key="pg_show_test")  # the test points, with black rims
        if shows("discretize"):
            toggles[1].toggle("Discretize", key="pg_discretize")  # each class's region in one colour


def map_views(was_running):
    """The network graph, the big map and the losses: one fragment, so that hovering a neuron redraws
    the big map at once (and both refresh together while training)."""
    if mine.pop("rerun_app", False):
        st.rerun(scope="app")
    view = studio.view()
    if view is None or studio.data is None or studio.data.plane_train is None:
        return
    if was_running and not studio.running:
        st.rerun(scope="app")  # stopped by itself: redraw the buttons
    config = studio.config
    maps = pf.plane_maps(view.params, config.activation, config.output, studio.data.features)
    pinned = mine.get("pinned") if pf.map_of(maps, mine.get("pinned")) is not None else None
    hovered = mine.get("hovered") if pf.map_of(maps, mine.get("hovered")) is not None else None
    shown = hovered or pinned
    discretize = state.get("pg_discretize", False)
    network_side, output_side = st.columns(COLUMNS)
    with network_side:
        live_plot(pf.network_figure(maps, view.params, shown=shown, pinned=pinned, discretize=discretize,
                                    edit=shows("edit"), height=300 if demo else 350,
                                    font=projector.FONT if demo else 11,
                                    max_units=PROFILE.max_units if shows("layers") else None),
                  key="pg_network", events=True, on_event=graph_event, config=STILL)
        if text and not demo:
            what = ["hover a neuron to see it in the big map (click: keep it there)"]
            if shows("layers"):
                what.append("− and + under a layer remove or add a unit")
            if shows("features"):
                what.append("click a feature to choose it")
            if shows("edit"):
                what.append("click a weight's dot or a bias square to type a new value")
            st.caption("; ".join(what).capitalize() + ".")
        if mine.get("last_edit") and text:
            st.caption(mine["last_edit"])
    with output_side:
        live_plot(pf.boundary_figure(maps, studio.data, show_test=state.get("pg_show_test", False),
                                     discretize=discretize, height=315 if demo else 330, shown=shown,
                                     font=projector.FONT if demo else 10), key="pg_boundary")
        losses = epoch_view(studio)
        if losses is not None:
            test, train = pf.loss_text(losses.train_loss, losses.test_loss)
            with st.container(key="pg_losses"):
                st.markdown(f"**{test}**  \n{train}")
            if not demo:  # the demo view: the losses as text, large
                live_plot(pf.loss_figure(losses.rows, losses.markers, height=170), key="pg_loss",
                          config=STILL)


def curve_views():
    view = studio.view()
    if view is None:
        return
    live_plot(figures.gradient_figure(view, height=250), key="pg_gradients")
    note = figures.vanishing_note(view)
    if note and text and view.activation == "sigmoid":  # the note speaks of sigmoid layers
        st.caption(note)


with right:
    live(studio, rates, "maps", map_views, running)
left_bottom, right_bottom = st.columns([2, 1.2])
if not demo:
    with left_bottom:
        live(studio, rates, "curves", curve_views)


def builder():
    """TensorFlow Playground's "use it in a classroom": a check box per control, a text-free mode
    and a lesson, written as one link (the set-up now, and those)."""
    st.markdown("**Guided lessons**: each link sets the page up and shows a few lines beside it.")
    for lesson in LESSONS.values():
        st.markdown(f"- [{lesson.title}]({lesson_link(lesson)})")
    st.markdown("**Link for my class**: untick what your students should not see.")
    controls = st.columns(3)
    for i, (name, label) in enumerate(PROFILE.hidable.items()):
        state.setdefault(f"pg_class_show_{name}", room.shows(name))
        controls[i % 3].checkbox(label, key=f"pg_class_show_{name}")
    state.setdefault("pg_class_text_free", room.text_hidden)
    st.checkbox("No captions or notes (text-free)", key="pg_class_text_free")
    state.setdefault("pg_class_lesson", room.lesson or "none")
    st.selectbox("Lesson", ["none", *LESSONS], key="pg_class_lesson",
                 format_func=lambda name: "none" if name == "none" else LESSONS[name].title)
    lesson = None if state.pg_class_lesson == "none" else state.pg_class_lesson
    wanted = Classroom(frozenset(name for name in PROFILE.hidable if not state[f"pg_class_show_{name}"]),
                       state.pg_class_text_free, lesson)
    base = (st.context.url or "").split("?")[0] or "playground"
    setup = LESSONS[lesson].config() if lesson else studio.pending or studio.config
    link = classroom_link(setup, wanted, PROFILE, base)
    st.code(link, language=None, wrap_lines=True)
    st.caption("The link carries the set-up as it is now (with a lesson: the lesson's). A link that hides a "
               "control hides this box too.")


if shows("builder") and text and not room.hidden and not demo:
    with right_bottom, st.expander("Lessons and classroom links"):
        builder()
