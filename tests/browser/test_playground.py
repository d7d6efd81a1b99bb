"""The Playground in a real browser: the spiral learnt live to >= 95% test accuracy from a link that
names only the data set and the layers, the output map redrawn with new values while training, a
weight read by hovering its edge; XOR without a hidden layer (a link as the Playground wrote them
before it had its own profile) stays near a coin flip and the page says why."""

import re
import time

import pytest

from tests.browser.conftest import KEYED_PLOT, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPIRAL = "dataset=spiral&layers=8,8,1"  # the rest is the Playground's own set-up (backprop/profiles.py)
# As the Playground wrote links before it had its own profile: every setting spelt out.
XOR_LINEAR = ("dataset=xor&digits=0,1&layers=1&activation=tanh&init=xavier&learning_rate=0.03"
              "&batch_size=10&iterations=10000000&eval_every=25")

# A few cells of the output map (49 x 49), as plotly.js holds them after decoding.
OUTPUT_PROBE = """() => {
  const plot = (""" + KEYED_PLOT + """)('pg_boundary');
  const z = plot && plot._fullData && plot._fullData[0] && plot._fullData[0].z;
  return z ? [z[0][0], z[12][30], z[24][24], z[40][7], z[48][48]] : null;
}"""

# Where the middle of the first edge's dot is on the page, in CSS pixels.
FIRST_WEIGHT = """() => {
  const frame = document.querySelector('.st-key-pg_network iframe');
  const plot = frame.contentDocument.querySelector('.js-plotly-plot');
  const index = plot._fullData.findIndex((trace) => trace.name === 'weights');
  const trace = plot._fullData[index];
  const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
  const box = frame.getBoundingClientRect(), inner = plot.getBoundingClientRect();
  return {x: box.left + inner.left + xa._offset + xa.l2p(trace.x[0]),
          y: box.top + inner.top + ya._offset + ya.l2p(trace.y[0]), text: trace.text[0]};
}"""
# The plotting area of a live chart on the page, in CSS pixels; and its x axis range.
PLOT_AREA = """(key) => {
  const frame = document.querySelector(`.st-key-${key} iframe`);
  const plot = frame.contentDocument.querySelector('.js-plotly-plot');
  const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
  const box = frame.getBoundingClientRect(), inner = plot.getBoundingClientRect();
  return {x: box.left + inner.left + xa._offset, y: box.top + inner.top + ya._offset,
          width: xa._length, height: ya._length};
}"""
X_RANGE = """(key) => (""" + KEYED_PLOT + """)(key)._fullLayout.xaxis.range.slice()"""
HOVER_TEXT = """() => {
  const frame = document.querySelector('.st-key-pg_network iframe');
  const layer = frame.contentDocument.querySelector('.hoverlayer');
  return layer ? layer.textContent : '';
}"""


def status(app):
    return app.page.get_by_text(re.compile(r"^iteration \d+")).first.inner_text()


def test_spiral_learns_live_and_every_weight_can_be_read(open_app):
    app = open_app("playground", SPIRAL, viewport=(1600, 1100))
    app.page.wait_for_function(f"() => ({KEYED_PLOT})('pg_network')", timeout=60_000)
    app.assert_clean()
    assert "iteration 0 " in status(app) and "Ignored from the link" not in app.text()
    assert app.page.url.endswith("?" + SPIRAL), app.page.url  # the link says only what differs

    app.click("Train")
    started = time.monotonic()
    probes = []

    def learnt():
        probe = app.page.evaluate(OUTPUT_PROBE)
        if probe is not None and (not probes or probe != probes[-1]):
            probes.append(probe)
        found = re.search(r"test accuracy ([\d.]+)%", status(app))
        return found and float(found.group(1)) >= 95

    wait_for(learnt, 60, lambda: f"no 95% test accuracy within 60 s: {status(app)}\n{app.debug()}", 0.3)
    seconds = time.monotonic() - started
    assert len(probes) >= 5, f"the output map was redrawn with new values only {len(probes)} times"
    app.screenshot("playground-01-spiral-learnt")

    # A zoom into the output map survives the refreshes that follow (the layout's uirevision).
    box = app.page.evaluate(PLOT_AREA, "pg_boundary")
    app.page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    app.page.mouse.down()
    app.page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=8)
    app.page.mouse.up()
    zoomed = app.page.evaluate(X_RANGE, "pg_boundary")
    assert zoomed[1] - zoomed[0] < 6, zoomed
    before = app.page.evaluate(OUTPUT_PROBE)
    wait_for(lambda: app.page.evaluate(OUTPUT_PROBE) != before, 10, lambda: "the output map stopped changing")
    time.sleep(1)
    assert app.page.evaluate(X_RANGE, "pg_boundary") == pytest.approx(zoomed), "a refresh undid the zoom"
    app.click("Pause")
    app.page.get_by_role("button", name="Train", exact=True).wait_for()
    time.sleep(1.5)  # the last refresh lands

    weight = app.page.evaluate(FIRST_WEIGHT)
    app.page.mouse.move(weight["x"], weight["y"])
    wait_for(lambda: "w = " in app.page.evaluate(HOVER_TEXT), 10,
             lambda: f"no weight shown on hover at {weight}: {app.page.evaluate(HOVER_TEXT)!r}")
    shown = app.page.evaluate(HOVER_TEXT)
    assert re.search(r"w = -?\d+\.\d{3}", shown) and "x₁" in shown and "layer 1, unit 1" in shown
    app.screenshot("playground-02-hover-weight")
    app.assert_clean()
    print(f"spiral: >= 95% test accuracy after {seconds:.1f} s; {status(app)}")


def test_xor_without_a_hidden_layer_stays_a_coin_flip_and_the_page_says_why(open_app):
    app = open_app("playground", XOR_LINEAR, viewport=(1600, 1100))
    app.page.get_by_text(re.compile("no straight line separates the classes of xor")).wait_for(timeout=60_000)
    assert "Ignored from the link" not in app.text()
    wait_for(lambda: app.page.url.endswith("?dataset=xor&layers=1"), 10, lambda: app.page.url)
    app.click("Train")
    wait_for(lambda: int(re.match(r"iteration (\d+)", status(app)).group(1)) > 3000, 90,
             lambda: f"too few steps: {status(app)}\n{app.debug()}")
    app.click("Pause")
    app.page.get_by_role("button", name="Train", exact=True).wait_for()
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", status(app)).group(1))
    assert accuracy < 75, status(app)  # a line gets at most ~3 quadrants of 4 right; it wanders near 50%
    app.screenshot("playground-03-xor-linear")
    app.assert_clean()
