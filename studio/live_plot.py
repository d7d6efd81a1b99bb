"""A Plotly chart that stays mounted while its figure changes: the element of the charts that
refresh while training.

`st.plotly_chart` mounts a new chart whenever its figure changes (the element's id hashes the
figure), so a chart refreshed twice a second costs the browser a React mount and a full Plotly draw
each time, about 50 ms of CPU taken from training on a small machine, and shows an empty box for a
frame now and then. This component keeps one plotly.js chart in an iframe and hands each new figure
to `Plotly.react`, which redraws in place and keeps the reader's zoom (the layout's `uirevision`).

With `events=True` the chart also says what a person does on it (the page's `live_plot/index.html`
lists the events): the pointer entering or leaving a region the figure names
(`layout.meta.live_plot.regions`, e.g. a neuron's map), a click on a region or on a point of a
trace marked clickable, a number typed for a point of a trace marked editable. The last event is
the component's value (`Streamlit.setComponentValue`), so `on_event` runs in the rerun it causes
(the fragment's, when the chart is in one) while the chart stays mounted. A figure builder marks
its regions and points with studio/chart_events.py.

Streamlit serves a component's files from one folder, and only files really inside it, so the
page (`live_plot/index.html`) and the installed plotly package's `plotly.min.js` are copied into
a cache folder per plotly version (~5 MB, once). Streamlit serves them without caching headers, so
the page fetches plotly.js once per browser tab and keeps it in the app's window for the charts of
later pages (a page switch took 1.3-2.5 s to draw the Train page's five charts when each one
fetched and compiled its own copy).
"""

import os
import threading
from collections.abc import Callable
from pathlib import Path

import plotly
import plotly.io.json
import streamlit.components.v1 as components

from backprop.paths import cache_dir

PAGE = Path(__file__).with_name("live_plot") / "index.html"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
DEFAULT_CONFIG = {"displaylogo": False, "responsive": True}


def _write_if_changed(content: bytes, target: Path) -> None:
    """Write through a temporary name, so that a browser never reads a half-written file and two
    servers, or two sessions of one server, starting together do not trip over each other (a
    class of 16 opening at once: one session's rename took the other's file, FileNotFoundError)."""
    if target.exists() and target.stat().st_size == len(content) and target.read_bytes() == content:
        return
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_bytes(content)
    os.replace(partial, target)


def page_html() -> bytes:
    """The component's page with the plotly version filled in: the key under which the app's window
    keeps plotly.js for the charts of later pages (a newer plotly on the server is fetched anew)."""
    return PAGE.read_bytes().replace(b"{{plotly_version}}", plotly.__version__.encode())


def asset_folder() -> Path:
    """The folder Streamlit serves the component from, filled on first use."""
    folder = cache_dir() / f"live_plot-plotly-{plotly.__version__}"
    folder.mkdir(parents=True, exist_ok=True)
    _write_if_changed(page_html(), folder / "index.html")
    _write_if_changed(PLOTLY_JS.read_bytes(), folder / "plotly.min.js")
    return folder


_folder = None


def live_plot(figure: dict, *, key: str, config: dict | None = None, events: bool = False,
              on_event: Callable[[], None] | None = None):
    """Draw a Plotly dict spec (its layout sets the height); with the same key on the next run,
    the chart already in the browser is updated instead of replaced. With `events`, returns the
    last event a person made on the chart (a dict: event, id, seq, and value for an edit) or None,
    and calls `on_event()` (a Streamlit callback: st.session_state[key] holds the event) first."""
    global _folder
    if _folder is None or not _folder.exists():
        _folder = asset_folder()
    # Declared on every call: Streamlit registers components with the running server, and a
    # declaration made while no script was running (an import from a test) is not registered.
    component = components.declare_component("live_plot", path=str(_folder))
    extra = {"events": True, "on_change": on_event} if events else {}
    value = component(spec=figure_json(figure, config), height=int(figure["layout"]["height"]), key=key,
                      default=None, **extra)
    return value if events else None


def figure_json(figure: dict, config: dict | None = None) -> str:
    """The figure and its plotly.js config as the JSON the page parses. plotly's encoder turns numpy
    arrays into lists and NaN into null (a gap in the line); json.dumps would write NaN, which is
    not JSON."""
    return plotly.io.json.to_json_plotly({**figure, "config": {**DEFAULT_CONFIG, **(config or {})}})
