"""Sweep: many set-ups at once (Dask runs them, Optuna chooses them), compared live; the winner
goes back to the Train page."""

import inspect
import os

import streamlit as st

from backprop.errors import InputError
from backprop.settings import SETTINGS, SWEEPABLE
from backprop.sweep import PRUNERS, STRATEGIES
from studio import sweep_figures, sweep_runner
from studio.recorded_runs import actor_for
from studio.session import get_studio, route_through_app

route_through_app()  # a direct link to this page on a fresh server: go through app.py

LIVE_SECONDS = 1.0
CLUSTER_VARIABLE = "BACKPROP_SWEEP_SCHEDULERS"  # addresses the page may offer, separated by spaces
CLUSTERS = os.environ.get(CLUSTER_VARIABLE, "").split()
EXAMPLES = {"layers": "e.g. 8,1 | 16,8,1", "learning_rate": "e.g. 0.01,0.1,1 or 1e-3:1 (range)",
            "batch_size": "e.g. full,64,256", "seed": "e.g. 1,2,3", "l2": "e.g. 0,1e-4,1e-3"}

studio = get_studio()
state = st.session_state
st.title("Sweep")
st.caption("Train many set-ups at once and compare them live. Optuna chooses the set-ups (grid, random "
           "or TPE) and stops clearly bad ones early; Dask trains them on this machine's cores or on a "
           "cluster. Every trial is a run on the Compare runs page.")
try:
    sweeps = sweep_runner.list_sweeps()
except InputError as error:
    st.error(f"{error.field}: {error.message}")
    st.stop()


def value_widget(setting):
    """A widget for the values one setting takes in the sweep ('' or [] = not varied)."""
    key = f"sweep_vary_{setting.name}"
    if setting.kind == "choice":
        return ",".join(st.multiselect(setting.label, setting.choices, key=key, help=setting.help))
    return st.text_input(setting.label, key=key, placeholder=EXAMPLES.get(setting.name, "e.g. "
                         + setting.encode(setting.default)), help=setting.help)


# -- set-up ---------------------------------------------------------------------------------------
with st.expander("New sweep", expanded=not sweeps):
    base_choice = st.selectbox("Base set-up", sweep_runner.BASE_CHOICES, key="sweep_base",
                               help="Every trial starts from this set-up and changes only what varies")
    st.markdown("**What varies** (leave a setting empty to keep the base's value). Lists are separated "
                "by commas, layer-size alternatives by `|`; a number range `low:high` suits random and TPE.")
    columns = st.columns(3)
    vary = []
    for i, name in enumerate(SWEEPABLE):
        with columns[i % 3]:
            text = value_widget(SETTINGS[name])
        if str(text).strip():
            vary.append(f"{name}={text}")
    left, middle, right = st.columns(3)
    strategy = left.selectbox("Strategy", STRATEGIES, key="sweep_strategy",
                              help="grid: every combination; random; tpe: Optuna's Bayesian sampler")
    trials = left.number_input("Trials (random, tpe; at most this many for a grid)", 1, 1000, 16,
                               key="sweep_trials")
    iterations = middle.number_input("Iterations per trial", 1, 100_000, 300, key="sweep_iterations")
    pruner = middle.selectbox("Stop bad trials early", PRUNERS, key="sweep_pruner",
                              help="median: below the median of finished trials at the same step; "
                                   "halving: successive halving; hyperband: Optuna's Hyperband. All on "
                                   "the metric.")
    metric = left.selectbox("Metric", list(sweep_runner.METRICS), key="sweep_metric",
                            help="What the sweep optimises: any recorded result (best_: the best over "
                                 "the trial's evaluations, else the value it ended with)")
    direction = middle.selectbox("Direction", ["natural", *sweep_runner.DIRECTIONS], key="sweep_direction",
                                 help="A cost is minimised, an accuracy maximised")
    target = middle.text_input("Target (optional)", key="sweep_target", placeholder="e.g. 0.95",
                               help="No new trials once the best value reaches it; running ones finish")
    seed = right.number_input("Sampler seed", 0, 2**31, 0, key="sweep_seed")
    # The server's limit (BACKPROP_SWEEP_MAX_WORKERS, its training slots); start_new checks it again,
    # with the memory every worker's trials take, before anything is recorded.
    workers = right.number_input("Local worker processes", 1, sweep_runner.max_workers(),
                                 sweep_runner.default_workers(), key="sweep_workers",
                                 help="Each trains one trial at a time and takes one of the server's "
                                      "training slots; all of them must fit the memory budget")
    # Dask unpickles what a scheduler sends, so only the server's operator names one (an address
    # typed into the page could make the server run anything); visitors choose among these.
    places = ["local workers", *CLUSTERS]
    place = right.selectbox("Where", places, key="sweep_place", disabled=len(places) == 1,
                            help=f"Local worker processes, or a Dask cluster the server's operator named "
                                 f"in {CLUSTER_VARIABLE} (`dask scheduler` and `dask worker` processes with "
                                 f"this package installed on each)")
    scheduler = "" if place == places[0] else place
    if st.button("Start sweep", type="primary", key="sweep_start"):
        try:
            state.sweep_id = sweep_runner.start_new(
                sweep_runner.base_config(base_choice, studio), vary, strategy, trials, seed, pruner,
                iterations=iterations, scheduler=scheduler.strip() or None, workers=workers,
                metric=metric, direction=None if direction == "natural" else direction,
                target=target.strip() or None, owner=studio.owner)  # this browser's, and its trials' runs
        except InputError as error:
            st.error(f"**{error.field}**: {error.message}")

# -- the sweeps -------------------------------------------------------------------------------------
sweeps = sweep_runner.list_sweeps()  # with the one just started
if not sweeps:
    st.info("No sweeps yet: choose what varies above and press **Start sweep** (or run "
            "`python -m backprop sweep --vary learning_rate=0.01,0.1,1`).")
    st.dataframe([{"setting": name, "values it takes": SETTINGS[name].allowed(),
                   "log scale": SETTINGS[name].log} for name in SWEEPABLE], hide_index=True)
    st.stop()
running = sweep_runner.running_ids()
search = st.text_input("Find a sweep", key="sweep_search", placeholder="a part of its name, or its id")
try:
    listed = sweep_runner.sweep_list(search)
except InputError as error:
    st.error(f"**{error.field}**: {error.message}")
    listed = sweep_runner.sweep_list()
with st.expander(f"Sweeps: {len(listed)} of {len(sweeps)}, newest first", expanded=bool(search.strip())):
    if listed:
        st.table(sweep_runner.sweep_rows(listed))
    else:
        st.caption(f"No sweep matches {search.strip()!r}; the picker below lists every sweep.")
shown = {s.id for s in listed} or {s["id"] for s in sweeps}
labels = {f"#{s['id']} {s['name']} ({'running' if s['id'] in running else s['status']})": s["id"]
          for s in sweeps if s["id"] in shown}
ids = list(labels.values())
wanted = state.get("sweep_id", running[0] if running else ids[0])
shown_id = labels[st.selectbox("Sweep", list(labels), index=ids.index(wanted) if wanted in ids else 0,
                               key=f"sweep_pick_{wanted}")]
state.sweep_id = shown_id


sweep_names = {s["id"]: s["name"] for s in sweeps}
PLOTS = ("History", "Slice", "Contour", "Intermediate values", "Parallel coordinates", "Scatter",
         "Importance")
# A missing number shows as "—", not "None" (st.dataframe's placeholder; an older Streamlit gets text cells).
NULL_CELLS = "placeholder" in inspect.signature(st.dataframe).parameters


@st.cache_data(max_entries=16, show_spinner=False)
def cached_importance(sweep_id, epoch, _snapshot):
    """Which settings mattered (an Importance, or None), computed again as more trials finish."""
    return sweep_figures.importance(_snapshot)


def trials_table(snapshot):
    if not NULL_CELLS:
        st.dataframe(sweep_figures.trials_table(snapshot, text=True), hide_index=True,
                     key="sweep_trials_table")
        return
    formats = sweep_figures.table_formats(snapshot)
    st.dataframe(sweep_figures.trials_table(snapshot), hide_index=True, key="sweep_trials_table",
                 placeholder=sweep_figures.MISSING,
                 column_config={column: st.column_config.NumberColumn(format=form)
                                for column, form in formats.items()})


def two_columns(options, keys, second=1):
    """Two pickers side by side (x and y axes), defaulting to two different options."""
    left, right = st.columns(2)
    x = left.selectbox("x axis", options, index=0, key=keys[0])
    y = right.selectbox("y axis", options, index=min(second, len(options) - 1), key=keys[1])
    return x, y


def result_plots(sweep_id, snapshot, name):
    """The plots of results, one at a time (the one shown is redrawn at each refresh while the
    sweep runs), from the third finished trial."""
    finished = len(sweep_figures.finished_trials(snapshot))
    if finished < sweep_figures.MIN_FINISHED:
        st.caption(f"The plots of results appear once {sweep_figures.MIN_FINISHED} trials have finished "
                   f"({finished} so far).")
        return
    plot = st.radio("Plot", PLOTS, horizontal=True, key="sweep_plot", label_visibility="collapsed")
    figure, why = None, None
    if plot == "History":
        x = st.radio("Against", tuple(sweep_figures.HISTORY_AXES), horizontal=True, key="sweep_history_x",
                     format_func=lambda key: {"trial": "trial number", "time": "time"}[key])
        figure = sweep_figures.history_figure(snapshot, x, name)
    elif plot == "Slice":
        figure = sweep_figures.slice_figure(snapshot)
    elif plot == "Contour":
        varied = [d.name for d in sweep_figures.varied(snapshot)]
        why = "A contour needs a sweep that varies two settings."
        if len(varied) >= 2:
            x, y = two_columns(varied, ("sweep_contour_x", "sweep_contour_y"))
            figure = sweep_figures.contour_figure(snapshot, x, y)
            why = "Choose two different settings, each with two values among the finished trials."
    elif plot == "Intermediate values":
        figure = sweep_figures.intermediate_figure(snapshot)
    elif plot == "Parallel coordinates":
        figure = sweep_figures.parallel_coordinates_figure(snapshot)
    elif plot == "Scatter":
        columns = sweep_figures.scatter_columns(snapshot)
        x, y = two_columns(columns, ("sweep_scatter_x", "sweep_scatter_y"), second=columns.index("test cost"))
        figure = sweep_figures.scatter_figure(snapshot, x, y)
        why = "No trial has both of these yet."
    else:
        result = cached_importance(sweep_id, sweep_figures.importance_epoch(finished), snapshot)
        figure = sweep_figures.importance_figure(result, name)
        why = "Importance needs a setting that has taken two values among the finished trials."
        if result is not None and result.fallbacks:
            st.caption("Not available here: " + "; ".join(f"{evaluator} ({reason})"
                                                         for evaluator, reason in result.fallbacks))
    if figure is not None:
        st.plotly_chart(sweep_figures.for_chart(figure), key=f"sweep_plot_{plot}")
    elif why:
        st.caption(why)


@st.fragment(run_every=LIVE_SECONDS if sweep_runner.is_running(shown_id) else None)
def sweep_view(sweep_id):
    try:
        snapshot = sweep_runner.snapshot(sweep_id)
    except InputError as error:  # a damaged journal (its file, line and what is wrong)
        st.error(f"**{error.field}**: {error.message}")
        return
    live = sweep_runner.is_running(sweep_id)
    if state.get("sweep_was_live") and not live:
        state.sweep_was_live = False
        st.rerun(scope="app")  # it ended: the buttons change
    state.sweep_was_live = live
    done, total = snapshot.done, snapshot.total
    best = snapshot.best(1)
    lost = len(snapshot.lost_attempts())  # attempts whose worker died (the trial ran again)
    st.progress(min(1.0, done / max(1, total)),
                text=f"**{snapshot.status}** · {done}/{total} done · {snapshot.count('running')} running · "
                     f"{snapshot.count('pruned')} pruned · "
                     f"{snapshot.count('failed') + snapshot.count('diverged')} failed · "
                     + (f"{lost} lost to a worker that died · " if lost else "")
                     + ("best: -" if not best else f"best: trial {best[0].number}, "
                        f"{snapshot.metric_label} {best[0].value:.4g}")
                     + f" · {snapshot.elapsed:.0f} s")
    if snapshot.message and snapshot.status == "failed":
        st.error(snapshot.message)
    elif snapshot.message:
        st.caption(snapshot.message)
    trials_table(snapshot)
    curves = sweep_figures.cost_curves_figure(snapshot)
    if curves is not None:
        st.plotly_chart(curves, key="sweep_curves")
    result_plots(sweep_id, snapshot, sweep_names.get(sweep_id))


# The sweep's buttons, above its live view (they stay put as the charts below grow). Anyone watches a
# sweep and loads its trials; only the browser that started it, or the operator, changes it (and
# sweep_runner refuses the others too, naming who may).
actor = actor_for(studio.owner, state.get("sweep_operator_token", ""))
try:
    record = sweep_runner.sweep_record(shown_id)
except InputError as error:  # deleted since the list was read (by its owner, or the operator)
    st.info(f"{error.message}: choose another sweep.")
    st.stop()
rights = sweep_runner.rights(record, actor)
locked = not rights.may_change


def change(action, *args, **options):
    """Change the shown sweep as this session; a refusal is shown naming its field, else the page reruns."""
    try:
        action(shown_id, *args, actor=actor, **options)
    except InputError as error:
        st.error(f"**{error.field}**: {error.message}")
        return
    st.rerun()


buttons = st.columns([1, 1, 1, 3])
if sweep_runner.is_running(shown_id):
    if sweep_runner.is_paused(shown_id):
        if buttons[0].button("Resume", key="sweep_unpause", help="Ask new trials again", disabled=locked):
            change(sweep_runner.resume_asking)
    elif buttons[0].button("Pause", key="sweep_pause", disabled=locked,
                           help="No new trials until resumed; running ones finish"):
        change(sweep_runner.pause_sweep)
    if buttons[1].button("Stop", key="sweep_stop", disabled=locked,
                         help="No new trials; running ones finish, then it ends"):
        change(sweep_runner.stop_sweep)
    if buttons[2].button("Cancel", key="sweep_cancel", disabled=locked,
                         help="Stops every running trial at its next step"):
        change(sweep_runner.cancel_sweep)  # returns once the trials' runs and 'cancelled' are written
elif record["status"] in ("cancelled", "interrupted", "failed", "created") or (
        record["status"] == "finished" and str(record["message"] or "").startswith("stopped")):
    if buttons[0].button("Resume", key="sweep_resume", help="Finished trials are kept; the rest run",
                         disabled=locked):
        place = state.get("sweep_place")
        change(sweep_runner.resume_sweep, scheduler=place if place in CLUSTERS else None,
               workers=state.get("sweep_workers"))
if locked:
    st.caption(rights.why_not)

with st.expander("Rename or delete this sweep"):
    name_column, rename_column = st.columns([3, 1], vertical_alignment="bottom")
    new_name = name_column.text_input("New name", value=record["name"], key=f"sweep_name_{shown_id}",
                                      disabled=locked)
    if rename_column.button("Rename", key="sweep_rename", disabled=locked):
        change(sweep_runner.rename_sweep, new_name)
    live = sweep_runner.is_running(shown_id)
    sure = st.checkbox("Yes, delete this sweep, its trials' runs and its journal", key="sweep_sure",
                       disabled=locked or live)
    if st.button("Delete", key="sweep_delete", disabled=locked or live or not sure,
                 help="Cancel a running sweep first"):
        try:
            sweep_runner.remove_sweep(shown_id, actor=actor)
        except InputError as error:
            st.error(f"**{error.field}**: {error.message}")
        else:
            state.pop("sweep_id", None)
            st.rerun()
    if live and not locked:
        st.caption("A running sweep is deleted once it has ended: cancel it first.")

sweep_view(shown_id)


@st.fragment(run_every=LIVE_SECONDS if sweep_runner.is_running(shown_id) else None)
def load_into_train(sweep_id):
    """The trial picker, redrawn with the sweep: its widget is keyed on the trials' order, so a new
    best trial makes a new picker whose first choice is that trial."""
    try:
        choices = sweep_figures.trial_choices(sweep_runner.snapshot(sweep_id))
    except InputError:  # shown by sweep_view above
        return
    if not choices:
        return
    st.subheader("Load into Train")
    numbers = dict(choices)
    picked = st.selectbox("Trial (best first)", list(numbers),
                          key=f"sweep_load_pick_{sweep_id}_{sweep_figures.choices_key(choices)}")
    if st.button("Load into Train", key="sweep_load",
                 help="Its set-up, and its trained network when it finished"):
        try:
            sweep_runner.load_trial(studio, sweep_id, numbers[picked])
            st.switch_page("pages/train.py")
        except InputError as error:
            st.error(f"**{error.field}**: {error.message}")


load_into_train(shown_id)
st.text_input("Operator token", type="password", key="sweep_operator_token",
              help="The server's BACKPROP_ADMIN_TOKEN: with it this session may pause, stop, cancel, resume, "
                   "rename or delete every sweep. Unset on the server: no operator over the web.")
if rights.operator:
    st.caption("Operator: you may pause, stop, cancel, resume, rename or delete every sweep.")
elif state.get("sweep_operator_token"):
    st.error("**operator token**: that is not the server's BACKPROP_ADMIN_TOKEN (or the server sets none)")
