"""Gradient check: backprop's gradients against numeric ones, and a learning-rate finder."""

import streamlit as st

from backprop.errors import InputError
from studio.analysis_figures import lr_finder_figure, relative_error_figure, verdict
from studio.network_checks import check_gradients, find_learning_rate
from studio.session import get_studio, route_through_app

route_through_app()  # a direct link to this page on a fresh server: go through app.py

st.title("Gradient check")
st.markdown(
    "Backprop computes every gradient in one backward pass. A slow but simple check nudges one "
    "weight by ±ε, measures how the cost changes, and compares: "
    "relative error = ‖numeric − backprop‖ / (‖numeric‖ + ‖backprop‖). "
    "**Below 1e-7 is excellent**; up to about 1e-4 is float rounding (kinks in ReLU can cause it); "
    "**above 1e-4 means the gradient is wrong** (or a ReLU unit sits exactly at 0).")
studio = get_studio()
if studio.trainer is None:
    st.info("There is no network to check yet: set one up and train it on the Train page first.")
    st.stop()

left, right = st.columns(2)
n_samples = int(left.number_input("Samples in the batch", min_value=1, max_value=256, value=16,
                                  key="gradcheck_samples"))
max_entries = int(right.number_input("Entries checked per W and per b", min_value=1, max_value=2000,
                                     value=40, key="gradcheck_entries",
                                     help="Large layers are checked on a seeded random sample"))
if st.button("Run gradient check", key="gradcheck_run", type="primary"):
    with st.spinner("Comparing gradients..."):
        st.session_state["gradcheck_report"] = check_gradients(studio, n_samples, max_entries)
check = st.session_state.get("gradcheck_report")
if check is None:
    st.caption("Press the button to check the current network's gradients.")
else:
    st.caption(f"Checked at iteration {check.iteration}.")
    st.dataframe([{"layer": row.layer, "dW relative error": f"{row.dW_error:.2e}",
                   "db relative error": f"{row.db_error:.2e}", "entries checked": row.checked,
                   "verdict": verdict(row.worst)} for row in check.layers],
                 hide_index=True)
    st.plotly_chart(relative_error_figure(check.layers), key="gradcheck_chart")

st.header("Learning-rate finder")
st.markdown("Trains a **copy** of the current network for a short sweep, multiplying the learning rate "
            "by a constant every step (from 1e-6 up to 10), and stops when the cost explodes. "
            "A good learning rate lies where the cost falls fastest, well before its minimum.")
if st.button("Find a learning rate", key="lr_finder_run"):
    try:
        with st.spinner("Sweeping learning rates..."):
            st.session_state["lr_finder_result"] = find_learning_rate(studio)
    except InputError as error:
        st.error(f"{error.field}: {error.message}")
finding = st.session_state.get("lr_finder_result")
if finding is not None:
    st.success(f"Suggested learning rate: **{finding.suggestion:.3g}** (the cost fell fastest at "
               f"{finding.steepest_lr or float('nan'):.3g}; its minimum was at {finding.minimum_lr:.3g}). "
               f"The sweep stopped because {finding.stopped}.")
    st.plotly_chart(lr_finder_figure(finding), key="lr_finder_chart")
