"""Backprop Studio: `streamlit run app.py`. The entrypoint lists the pages; the shared state (the
current network and its run) lives in a per-session Studio (studio.session) and survives page
switches."""

import streamlit as st

demo = st.query_params.get("demo", "") in ("1", "true")  # a demo link opens without the sidebar
st.set_page_config(page_title="Backprop Studio", page_icon=":material/neurology:", layout="wide",
                   initial_sidebar_state="collapsed" if demo else "auto")
st.navigation([
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("pages/inspect.py", title="Inspect", icon=":material/search:"),
    st.Page("pages/math.py", title="Math", icon=":material/functions:"),
    st.Page("pages/gradients.py", title="Gradient check", icon=":material/trending_down:"),
    st.Page("pages/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
    st.Page("pages/data.py", title="Data", icon=":material/image:"),
]).run()
