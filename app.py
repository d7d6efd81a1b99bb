"""Backprop Studio: `streamlit run app.py`. The entrypoint lists the pages; the shared state (the
current network and its run) lives in a per-session Studio (studio.session) and survives page
switches."""

# The libraries the pages use, imported here, before any page runs (issue 11). One first imported
# by one session's page while other sessions' threads run can be seen half-initialised by them
# (plotly and Streamlit look pandas up in sys.modules: "partially initialized module 'pandas' has
# no attribute 'NaT'"). Streamlit imports pandas and pyarrow lazily, for st.dataframe.
import contextlib
import sys

import pandas  # noqa: F401
import plotly.graph_objects  # noqa: F401
import plotly.io.json  # noqa: F401
import pyarrow  # noqa: F401
import streamlit as st
import streamlit.components.v1  # noqa: F401
from PIL import Image  # noqa: F401

with contextlib.suppress(ImportError):
    import orjson  # noqa: F401  (plotly's optional JSON engine, which it imports on first use)

# A thread waiting for the interpreter lock asks for it after this long. The training pool's
# workers run pure Python and hold it; each numpy, PNG or socket call of a page's drawing and of
# the event loop lets go of it and then waited the default 5 ms to get it back. With 16 Playground
# sessions training (`benchmarks/bench_load.py --playground 16`, drawing share 0.3), 1 ms took
# the slowest session from 114 to 140 steps/s with the maps still above 1 Hz.
sys.setswitchinterval(0.001)

from studio.pages import PAGES  # noqa: E402 (after the libraries above)
from studio.url_state import demo_from_query  # noqa: E402
from studio.widgets import steady_live_views  # noqa: E402

demo = demo_from_query(st.query_params.to_dict())  # a demo link opens without the sidebar
st.set_page_config(page_title="Backprop Studio", page_icon=":material/neurology:", layout="wide",
                   initial_sidebar_state="collapsed" if demo else "auto")
steady_live_views()
st.navigation([st.Page(page.path, title=page.title, icon=page.icon, default=page is PAGES[0])
               for page in PAGES]).run()
