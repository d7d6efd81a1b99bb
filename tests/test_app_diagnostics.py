"""The Train page's diagnostics through Streamlit's AppTest: the banner at the top of the page, the
stability panel, and the gradient chart's measure (issue 20)."""

import json
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from studio.session import Studio, active_training_threads

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_app(**query):
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in {"subset": "300", **query}.items():
        at.query_params[key] = value
    return at.run()


def button(at, label):
    return next(b for b in at.button if b.label == label)


def in_page_order(node, out=None):
    """(type, label or value) of every element under `node`, in the order the page draws them."""
    out = [] if out is None else out
    for child in getattr(node, "children", {}).values():
        out.append((child.type, getattr(child, "label", None) or str(getattr(child, "value", ""))))
        in_page_order(child, out)
    return out


def live_charts(at):
    charts = {}
    for element in at.get("component_instance"):
        if element.proto.component_name.endswith("live_plot"):
            spec = json.loads(element.proto.json_args)["spec"]
            charts[element.proto.id.rsplit("-", 1)[1]] = json.loads(spec)
    return charts


def wait_for_error(at, text, seconds=90):
    """Rerun the page until an st.error holds `text` (the diagnostics thread measures in the
    background); fail naming what the page showed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [e.value for e in at.error if text in e.value]
        if found:
            return found[0]
        time.sleep(0.5)
        at.run()
    raise AssertionError(f"no error with {text!r} in {seconds} s; errors {[e.value for e in at.error]}, "
                         f"captions {[c.value for c in at.caption]}")


@pytest.fixture(autouse=True)
def _fresh_studio():
    st.cache_resource.clear()
    yield
    assert active_training_threads() == 0


def test_the_tutorial_at_lr_10_shows_a_banner_at_the_top_naming_the_measured_cause():
    at = open_app(learning_rate="10.0")
    assert not at.exception and not at.error
    button(at, "Step ×10").click().run()
    button(at, "Step ×10").click().run()
    text = wait_for_error(at, "Diverging")
    assert "The cost is rising" in text and "iteration 0 \\> 2/η = 0.200" in text
    assert "the stability limit for this curvature is lr \\<" in text and "\\(now 10\\)" in text
    order = [kind for kind, _ in in_page_order(at.main)]
    assert order.index("error") < order.index("button")  # at the top: above the Train button
    assert order.index("title") < order.index("error")
    assert not at.exception


def test_the_stability_panel_and_the_gradient_measure(use_studio):
    studio = use_studio(Studio())
    at = open_app(learning_rate="0.5")
    button(at, "Step ×10").click().run()
    assert at.session_state["sharpness_every"] == 20 and at.session_state["noise_every"] == 100
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (any("λ_max" in c.value for c in at.caption)
                                               and any("critical batch" in c.value for c in at.caption)):
        time.sleep(0.5)
        at.run()
    captions = [c.value for c in at.caption]
    assert any(c.startswith("λ_max") and "2/η = 4.00" in c for c in captions), captions
    assert any("critical batch" in c and "yours: 300 (the full batch)" in c for c in captions), captions
    charts = live_charts(at)
    assert charts["sharpness_chart"]["data"][0]["x"]
    assert charts["gradient_chart"]["layout"]["yaxis"]["title"]["text"] == "mean |dW|"
    at.session_state["gradient_measure"] = "norm"
    at.selectbox(key="sharpness_every").set_value(None).run()
    assert live_charts(at)["gradient_chart"]["layout"]["yaxis"]["title"]["text"] == "‖dW‖"
    assert studio.run.diagnostics.sharpness_every is None and studio.run.diagnostics.watch
    assert not at.exception
