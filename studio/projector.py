"""Projector mode (the Demo view toggle, `demo=1`) and the keyboard shortcuts.

In the demo view a page draws only its essential views, sized to fit one 1280x720 screen, with
text large enough to read from the back of a room: `enlarge(figure)` sets a Plotly dict spec's
fonts (tick labels and legend 18 px, titles larger) and `projector_css()` makes the status line,
the buttons and the toggles large. The CSS is drawn only on a demo-view run, so it leaves the
other view (and the other pages) as they are.

`shortcuts()` puts a tiny script on the page (`st.html` with JavaScript allowed: it runs in the page
itself, where components.html, deprecated since Streamlit 1.56, ran it in an iframe): Space trains
or pauses, S steps, R resets, D flips the demo view, by clicking the
page's own buttons, found by their text; keys typed into an input, a text area or a select are left
alone, as are keys with Ctrl, Alt or Meta.
"""

import streamlit as st

FONT = 18  # px: tick labels, legend, annotations
TITLE_FONT = 22
AXIS_TITLE_FONT = 20
AXES = ("xaxis", "yaxis", "xaxis2", "yaxis2")
LEGEND = "Keys: **Space** train / pause · **S** step · **R** reset · **D** demo view"


def enlarge(figure: dict, title: str | None = None) -> dict:
    """The figure with projector-sized text and margins wide enough for it (changed in place and
    returned); `title` replaces a title too long for a third of the screen at that size."""
    layout = figure["layout"]
    if title is not None:
        layout["title"] = {**layout.get("title", {}), "text": title}
    layout["font"] = {**layout.get("font", {}), "size": FONT}
    for name in AXES:
        axis = layout.get(name)
        if axis is None:
            continue
        axis["tickfont"] = {**axis.get("tickfont", {}), "size": FONT}
        if axis.get("type") == "log":  # decades only: plotly.js draws the 2s and 5s between at 3/4 size
            axis["dtick"] = 1
        title = axis.get("title")
        if isinstance(title, dict):
            title["font"] = {**title.get("font", {}), "size": AXIS_TITLE_FONT}
            title.setdefault("standoff", 4)
    title = layout.get("title")
    if isinstance(title, dict):
        title["font"] = {**title.get("font", {}), "size": TITLE_FONT}
    layout["legend"] = {**layout.get("legend", {}), "font": {"size": FONT}}
    for trace in figure.get("data", []):
        if "colorbar" in trace or trace.get("type") == "heatmap":
            trace["colorbar"] = {**trace.get("colorbar", {}), "tickfont": {"size": FONT}}
    for note in layout.get("annotations", []):
        note["font"] = {**note.get("font", {}), "size": max(FONT, (note.get("font") or {}).get("size") or 0)}
    margin = layout.get("margin")
    if margin is not None:
        layout["margin"] = {**margin, "l": max(margin.get("l", 60), 80), "t": max(margin.get("t", 40), 50),
                            "b": max(margin.get("b", 70), 95)}
        if margin.get("r", 20) > 20:
            layout["margin"]["r"] = 80
    return figure


# Scoped to the demo view: drawn only on its runs. Streamlit's main column keeps 6rem above its
# content for the header; the demo view keeps less, and no room below the last element.
CSS = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 4.2rem !important; padding-bottom: 0 !important; }
[data-testid="stMain"] button[data-testid^="stBaseButton"] { min-height: 3rem; }
[data-testid="stMain"] button[data-testid^="stBaseButton"] p { font-size: 1.4rem !important; }
[data-testid="stMain"] [data-testid="stCheckbox"] p { font-size: 1.3rem !important; }
.st-key-status_line p, .st-key-pg_losses p { font-size: 1.5rem !important; line-height: 1.3; }
.st-key-pg_status_line p { font-size: 1.2rem !important; line-height: 1.3; }
[data-testid="stMain"] [data-testid="stCaptionContainer"] p { font-size: 1.1rem !important; }
.st-key-shortcut_legend p { font-size: 1rem !important; }
</style>"""


def projector_css():
    st.html(CSS)


SCRIPT = """<script>
(() => {
  const doc = document;
  const typing = (el) => el && (el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName)
                                || (el.getAttribute && el.getAttribute('role') === 'combobox'));
  const button = (label) => [...doc.querySelectorAll('[data-testid="stMain"] button')]
    .find((b) => b.innerText.trim() === label && !b.disabled);
  const toggles = '[data-testid="stMain"] [data-testid="stCheckbox"] label';
  const toggle = (label) => [...doc.querySelectorAll(toggles)]
    .find((l) => l.innerText.trim() === label);
  const handler = (event) => {
    if (event.ctrlKey || event.altKey || event.metaKey || event.repeat) return;
    if (typing(event.target) || typing(doc.activeElement)) return;
    let target = null;
    const key = event.key.toLowerCase();
    if (key === ' ') target = button('Train') || button('Pause');
    else if (key === 's') target = button('Step');
    else if (key === 'r') target = button('Reset');
    else if (key === 'd') target = toggle('Demo view');
    if (!target) return;
    event.preventDefault();
    target.click();
  };
  // One listener on the page at a time: a script drawn again replaces the last one's.
  if (window.__backpropShortcuts) doc.removeEventListener('keydown', window.__backpropShortcuts, true);
  window.__backpropShortcuts = handler;
  doc.addEventListener('keydown', handler, true);
})();
</script>"""


def shortcuts(legend=True):
    """The keyboard shortcuts' listener and, with `legend`, a one-line legend of them."""
    st.html(SCRIPT, unsafe_allow_javascript=True)
    if legend:
        with st.container(key="shortcut_legend"):
            st.caption(LEGEND)
