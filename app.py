"""Backprop Studio: `streamlit run app.py`. The entrypoint lists the pages; the shared state (the
current network and its run) lives in a per-session Studio (studio.session) and survives page
switches."""

from pathlib import Path

import streamlit as st

PAGES = [  # (file under pages/, title, icon); pages whose file is missing are left out
    ("train.py", "Train", ":material/model_training:"),
    ("inspect.py", "Inspect", ":material/search:"),
    ("math.py", "Math", ":material/functions:"),
    ("gradients.py", "Gradients", ":material/trending_down:"),
    ("compare.py", "Compare runs", ":material/compare_arrows:"),
    ("data.py", "Data", ":material/image:"),
]

demo = st.query_params.get("demo", "") in ("1", "true")  # a demo link opens without the sidebar
st.set_page_config(page_title="Backprop Studio", page_icon=":material/neurology:", layout="wide",
                   initial_sidebar_state="collapsed" if demo else "auto")
here = Path(__file__).parent / "pages"
pages = [st.Page(f"pages/{name}", title=title, icon=icon, default=(name == "train.py"))
         for name, title, icon in PAGES if (here / name).exists()]
st.navigation(pages).run()
