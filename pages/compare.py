"""Compare: every recorded run (app and CLI), their curves side by side, and set-up against result."""

from pathlib import Path

import numpy as np
import streamlit as st

from backprop.config import TrainConfig
from backprop.errors import InputError
from backprop.landscape import Landscape, pca_plane
from backprop.runs import RunStore
from studio.analysis_figures import (
    final_accuracy,
    landscape_figure,
    parallel_coordinates_figure,
    path_figure,
    run_curves_figure,
)
from studio.session import get_studio, route_through_app

route_through_app()  # a direct link to this page on a fresh server: go through app.py

st.title("Compare runs")
try:
    store = RunStore()
    runs = store.list_runs()
except InputError as error:
    st.error(f"{error.field}: {error.message}")
    st.stop()
if not runs:
    st.info("No runs recorded yet: train a network on the Train page (or with `python -m backprop train`) "
            "and it appears here.")
    st.stop()


# This session's own run, when no thread trains it (paused, or only Stepped), can go on from the
# Train page: "paused" says so better than the database's "running" or "stopped".
studio = get_studio()
for run in runs:
    if run["id"] == studio.run_id and run["status"] in ("running", "stopped") and not studio.running:
        run["status"] = "paused"


def label(run):
    return f"#{run['id']} {run['name']} ({run['status']})"


st.dataframe([{"id": run["id"], "name": run["name"], "status": run["status"], "source": run["source"],
               "layers": ",".join(map(str, run["config"].get("layers", []))),
               "activation": run["config"].get("activation"), "optimizer": run["config"].get("optimizer"),
               "learning rate": run["config"].get("learning_rate"),
               "steps": (run["last_iteration"] + 1) if run["last_iteration"] is not None else 0,
               "test accuracy": final_accuracy(run)} for run in runs], hide_index=True)

by_label = {label(run): run for run in runs}
chosen = st.multiselect("Runs to overlay", list(by_label), default=list(by_label)[:3], key="compare_runs")
if chosen:
    pairs = [(by_label[name], store.history(by_label[name]["id"])) for name in chosen]
    st.plotly_chart(run_curves_figure(pairs, "cost", "Training cost"), key="compare_cost")
    if any(row.get("test_accuracy") is not None for _, history in pairs for row in history):
        st.plotly_chart(run_curves_figure(pairs, "test_accuracy", "Test accuracy"), key="compare_accuracy")
    else:
        st.info("No test accuracy yet for these runs: the test set is evaluated every `eval_every` "
                "iterations (set on the Train page), so train past the first evaluation.")


@st.cache_data(max_entries=8, show_spinner=False)
def saved_path(path, modified):
    """What a run's checkpoint keeps of its path: its last loss landscape, else its path in the PCA
    plane of its parameter snapshots with the cost at each point, else a sentence saying why not.
    `modified` (the file's time) makes a rewritten checkpoint load again."""
    from backprop.checkpoint import load_checkpoint

    try:
        checkpoint = load_checkpoint(path)
    except InputError as error:
        return error.message
    history = checkpoint.history
    if history is None:
        return "its checkpoint has no history"
    if history.landscape is not None:
        return history.landscape
    last = history.last()
    final_iteration = last["iteration"] + 1 if last else 0
    iterations, snapshots = history.trajectory.snapshots(before=final_iteration)
    try:
        plane = pca_plane(iterations, snapshots, checkpoint.network.params, final_iteration)
    except InputError as error:
        return error.message
    kept, costs = history.iterations, history.costs
    nearest = np.clip(np.searchsorted(kept, plane.path_iterations), 0, len(kept) - 1)
    return plane.path_iterations, plane.path, costs[nearest]


def path_views(chosen_runs):
    """The first two chosen runs' paths side by side (a landscape when one was computed for it)."""
    with_checkpoint = [run for run in chosen_runs if run["checkpoint_path"]][:2]
    if not with_checkpoint:
        st.caption("Paths appear for runs that saved a checkpoint (a run saves one when it pauses or ends).")
        return
    for column, run in zip(st.columns(2), with_checkpoint, strict=False):
        path = Path(run["checkpoint_path"])
        found = saved_path(str(path), path.stat().st_mtime if path.exists() else 0.0)
        label = f"#{run['id']} {run['name']}"[:40]
        with column:
            if isinstance(found, str):
                st.info(f"{label}: no path to show: {found}.")
            elif isinstance(found, Landscape):
                st.plotly_chart(landscape_figure(found, title=f"{label}: {found.kind} plane"),
                                key=f"compare_landscape_{run['id']}")
            else:
                st.plotly_chart(path_figure(label, *found), key=f"compare_path_{run['id']}")


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
name_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
new_name = name_column.text_input("New name", value=picked["name"], key=f"compare_name_{picked['id']}")
if button_column.button("Rename", key="compare_rename"):
    try:
        store.rename(picked["id"], new_name)
        st.rerun()
    except InputError as error:
        st.error(f"{error.field}: {error.message}")
sure = st.checkbox("Yes, delete this run and its history", key="compare_sure")
if st.button("Delete", key="compare_delete", disabled=not sure):
    store.delete(picked["id"])
    st.rerun()
if st.button("Load into the Train page", key="compare_load"):
    try:
        studio.load_run(TrainConfig.from_dict(picked["config"]), picked["checkpoint_path"],
                        label=f"Run #{picked['id']}")
    except InputError as error:
        st.error(f"{error.field}: {error.message}")
    else:
        st.switch_page("pages/train.py")
st.caption(f"Runs are kept in {store.path}")
