"""Compare: every recorded run (app and CLI), their curves side by side, and set-up against result."""

from pathlib import Path

import streamlit as st

from backprop.errors import InputError
from studio.analysis_figures import (
    landscape_figure,
    parallel_coordinates_figure,
    path_figure,
    run_curves_figure,
)
from studio.landscapes import run_path
from studio.recorded_runs import RunRecords, actor_for, load_into_studio
from studio.session import get_studio, route_through_app
from studio.url_state import plain

route_through_app()  # a direct link to this page on a fresh server: go through app.py

st.title("Compare runs")
studio = get_studio()
try:
    # Anyone reads every run; only its owner (this session's token) or the operator changes it.
    records = RunRecords(actor=actor_for(studio.owner, st.session_state.get("compare_operator_token", "")))
    runs = records.runs(studio)  # this session's own run, when no thread trains it, shows as "paused"
except InputError as error:
    st.error(f"{error.field}: {error.message}")
    st.stop()
if not runs:
    st.info("No runs recorded yet: train a network on the Train page (or with `python -m backprop train`) "
            "and it appears here.")
    st.stop()


st.dataframe([{"id": run.id, "name": run.name, "status": run.status, "pinned": run.pinned,
               "source": run.source, "started by": records.whose(run),
               "layers": ",".join(map(str, run.config.get("layers", []))),
               "activation": run.config.get("activation"), "optimizer": run.config.get("optimizer"),
               "learning rate": run.config.get("learning_rate"), "steps": run.steps,
               "test accuracy": run.final_accuracy} for run in runs], hide_index=True)

by_label = {run.label: run for run in runs}
chosen = st.multiselect("Runs to overlay", list(by_label), default=list(by_label)[:3], key="compare_runs")
if chosen:
    pairs = [(by_label[name], records.history(by_label[name])) for name in chosen]
    st.plotly_chart(run_curves_figure(pairs, "cost", "Training cost"), key="compare_cost")
    if any(row.get("test_accuracy") is not None for _, history in pairs for row in history):
        st.plotly_chart(run_curves_figure(pairs, "test_accuracy", "Test accuracy"), key="compare_accuracy")
    else:
        st.info("No test accuracy yet for these runs: the test set is evaluated every `eval_every` "
                "iterations (set on the Train page), so train past the first evaluation.")


@st.cache_data(max_entries=8, show_spinner=False)
def saved_path(path, modified):
    """run_path(path), kept for the file's time `modified`: a rewritten checkpoint loads again."""
    return run_path(path)


def path_views(chosen_runs):
    """The first two chosen runs' paths side by side (a landscape when one was computed for it)."""
    with_checkpoint = [run for run in chosen_runs if run.checkpoint_path][:2]
    if not with_checkpoint:
        st.caption("Paths appear for runs that saved a checkpoint (a run saves one when it pauses or ends).")
        return
    for column, run in zip(st.columns(2), with_checkpoint, strict=False):
        path = Path(run.checkpoint_path)
        found = saved_path(str(path), path.stat().st_mtime if path.exists() else 0.0)
        with column:
            if found.missing is not None:
                st.info(f"{plain(run.title[:40])}: no path to show: {plain(found.missing)}.")
            elif found.landscape is not None:
                st.plotly_chart(landscape_figure(found.landscape, run_label=run.title),
                                key=f"compare_landscape_{run.id}")
            else:
                st.plotly_chart(path_figure(run.title, found.iterations, found.path, found.costs),
                                key=f"compare_path_{run.id}")


if chosen:
    st.subheader("Paths over the loss landscape")
    path_views([by_label[name] for name in chosen])
parallel = parallel_coordinates_figure(runs)
if parallel is None:
    st.caption("The set-up chart appears once a run has a test accuracy.")
else:
    st.plotly_chart(parallel, key="compare_parallel")

st.subheader("Manage a run")
picked = by_label[st.selectbox("Run", list(by_label), key="compare_manage")]
locked = not records.may_change(picked)  # the run store refuses another's run too
if locked:
    st.caption(f"Started by {records.whose(picked)}: you may compare it and load it into your Train page; "
               "only the browser that started it, or the operator, may rename, pin or delete it.")
name_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
new_name = name_column.text_input("New name", value=picked.name, key=f"compare_name_{picked.id}",
                                  disabled=locked)
if button_column.button("Rename", key="compare_rename", disabled=locked):
    try:
        records.rename(picked, new_name)
        st.rerun()
    except InputError as error:
        st.error(f"{error.field}: {error.message}")
if picked.pinned:
    if st.button("Unpin", key="compare_unpin", disabled=locked,
                 help="Let the disk quota's clean-up remove this run again (oldest runs first) once the "
                      "studio's disk is full"):
        try:
            records.unpin(picked)
            st.rerun()
        except InputError as error:
            st.error(f"**{error.field}**: {error.message}")
elif st.button("Pin", key="compare_pin", disabled=locked,
               help="Keep this run, its history and its checkpoint, when the studio's disk is full and old "
                    "runs are cleaned up"):
    try:
        records.pin(picked)
        st.rerun()
    except InputError as error:
        st.error(f"**{error.field}**: {error.message}")
sure = st.checkbox("Yes, delete this run and its history", key="compare_sure", disabled=locked)
if st.button("Delete", key="compare_delete", disabled=locked or not sure):
    try:
        records.delete(picked)
        st.rerun()
    except InputError as error:
        st.error(f"**{error.field}**: {error.message}")
if st.button("Load into the Train page", key="compare_load"):
    try:
        load_into_studio(studio, picked)
    except InputError as error:
        st.error(f"{error.field}: {error.message}")
    else:
        st.switch_page("pages/train.py")
st.caption(f"Runs are kept in {records.path}")
st.text_input("Operator token", type="password", key="compare_operator_token",
              help="The server's BACKPROP_ADMIN_TOKEN: with it this session may rename, pin or delete every "
                   "run. Unset on the server: no operator over the web.")
if records.operator:
    st.caption("Operator: you may rename, pin or delete every run.")
elif st.session_state.get("compare_operator_token"):
    st.error("**operator token**: that is not the server's BACKPROP_ADMIN_TOKEN (or the server sets none)")
