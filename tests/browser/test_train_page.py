"""The Train page in a real browser: Train makes the cost chart grow, Pause stops it, Step adds exactly one
point, Reset empties it; bad sidebar values give an inline message and keep the run; never a traceback."""

import time

from playwright.sync_api import expect

from tests.browser.conftest import KEYED_PLOT, wait_for

# The charts refresh on a timer while training; two periods of stillness mean "stopped".
REFRESH_SECONDS = 1.0
# A quick set-up: the tutorial's network on 300 training images (a step takes a few ms).
QUICK = "subset=300"


def settled_points(app, periods: float = 2.0, timeout: float = 30.0) -> int:
    """Wait for the point count to stay the same over `periods` refresh periods and return it;
    fail after `timeout` seconds if it keeps changing (a chart that never settles)."""
    deadline = time.monotonic() + timeout
    before = app.plot_points()
    while time.monotonic() < deadline:
        time.sleep(periods * REFRESH_SECONDS)
        after = app.plot_points()
        if after == before:
            return after
        before = after
    raise AssertionError(f"the cost chart kept changing for {timeout:.0f} s (last {before} points)")


def test_train_pause_step_reset(open_app):
    app = open_app(query=QUICK)
    app.assert_clean()

    app.click("Train")
    app.wait_points(lambda points: points > 20, timeout=60)
    app.screenshot("train-01-training")
    app.assert_clean()

    app.click("Pause")
    paused = settled_points(app)
    assert paused > 20
    time.sleep(2 * REFRESH_SECONDS)
    assert app.plot_points() == paused, "the chart kept growing after Pause"
    app.screenshot("train-02-paused")

    app.click("Step")
    stepped = app.wait_points(lambda points: points >= paused + 1, timeout=30)
    assert stepped == paused + 1
    assert settled_points(app) == paused + 1, "Step must add exactly one point"

    app.click("Reset")
    app.wait_points(lambda points: points == 0, timeout=30)
    time.sleep(2 * REFRESH_SECONDS)
    assert not app.plot_points(), "the chart refilled after Reset"
    app.screenshot("train-03-reset")
    app.assert_clean()


def test_bad_sidebar_values_show_a_message_and_keep_the_run(open_app):
    app = open_app(query=QUICK)
    app.click("Step")
    points = app.wait_points(lambda points: points >= 1, timeout=60)
    app.click("Step")
    points = app.wait_points(lambda points: points >= 2, timeout=30)

    for label, bad, field in [("Hidden layer sizes", "a,b", "layers"), ("L2 regularisation", "-1", "l2"),
                              ("Training subset", "many", "subset")]:
        box = app.page.get_by_label(label, exact=True)
        good = box.input_value()
        box.fill(bad)
        box.press("Enter")
        error = app.page.locator('[data-testid="stSidebar"] [data-testid="stAlertContentError"]')
        expect(error.first).to_be_visible()
        expect(error.first).to_contain_text(field)
        assert settled_points(app) == points, f"a bad {label} must not lose the current run"
        assert f"iteration {points}" in app.text()
        app.screenshot(f"train-04-bad-{field}")
        app.assert_clean()
        box.fill(good)
        box.press("Enter")
        expect(error).to_have_count(0)
    app.assert_clean()


def test_bad_values_in_the_link_are_named_and_dropped(open_app):
    """A learning rate of 0 and nonsense layers in a link: a warning naming each, the rest applies."""
    app = open_app(query=QUICK + "&learning_rate=0&layers=a,b")
    warnings = app.page.locator('[data-testid="stAlert"]', has_text="Ignored from the link")
    expect(warnings.filter(has_text="learning_rate")).to_have_count(1)
    expect(warnings.filter(has_text="layers")).to_have_count(1)
    expect(app.page.get_by_label("Training subset", exact=True)).to_have_value("300")
    app.click("Step")
    app.wait_points(lambda points: points == 1, timeout=60)
    app.screenshot("train-05-bad-link")
    app.assert_clean()


# Checked before every painted frame: the cost chart on screen (drawn line, last iteration, opacity)
# and the weight image (loaded).
WATCH_FRAMES = """() => {
  const s = window.__frames = {frames: 0, costBlank: 0, costBack: 0, faded: 0, imageBlank: 0, most: 0};
  const onScreen = (el) => el.getClientRects().length > 0;
  const costPlot = """ + KEYED_PLOT + """;
  const tick = () => {
    s.frames++;
    const box = [...document.querySelectorAll('.st-key-cost_chart')].find(onScreen);
    const plot = box && costPlot('cost_chart');
    const line = plot && plot.querySelector('.scatterlayer .trace path.js-line');
    const drawn = line && (line.getAttribute('d') || '').length > 10;
    if (!drawn) s.costBlank++;
    else {
      const x = plot._fullData[0].x;  // the last iteration shown (the count varies once downsampled)
      const last = x[x.length - 1];
      if (last < s.most) s.costBack++;
      s.most = Math.max(s.most, last);
    }
    if (box && parseFloat(getComputedStyle(box).opacity) < 0.99) s.faded++;
    const images = [...document.querySelectorAll('[data-testid="stMain"] img')].filter(onScreen);
    if (!images.length || !images.every((img) => img.complete && img.naturalWidth > 0)) s.imageBlank++;
    window.__watching = requestAnimationFrame(tick);
  };
  tick();
}"""


def test_live_views_do_not_flicker_while_training(open_app):
    app = open_app(query=QUICK + "&iterations=100000")
    app.click("Train")
    app.wait_points(lambda points: points > 5, timeout=60)
    expect(app.page.locator('[data-testid="stMain"] img').first).to_be_visible()
    app.page.evaluate(WATCH_FRAMES)
    # Watch 240 frames (about 4-8 s) over which the chart moved on by 5 iterations at least.
    start = app.page.evaluate("() => window.__frames.most")
    watched = f"() => window.__frames.frames >= 240 && window.__frames.most >= {start + 5}"
    wait_for(lambda: app.page.evaluate(watched),
             60, lambda: f"frames watched: {app.page.evaluate('() => window.__frames')}")
    seen = app.page.evaluate("() => { cancelAnimationFrame(window.__watching); return window.__frames; }")
    # A reader's zoom survives the refreshes: the chart is redrawn in place with the same uirevision.
    app.page.evaluate(f"""() => {{
        const plot = ({KEYED_PLOT})('cost_chart');
        return plot.ownerDocument.defaultView.Plotly.relayout(plot, {{'xaxis.range': [0, 3]}});
    }}""")
    def shown():  # the last iteration on the chart and the x range (the point count stops at ~1000)
        return app.page.evaluate(f"""() => {{ const plot = ({KEYED_PLOT})('cost_chart');
                                            const x = plot._fullData[0].x;
                                            return [x[x.length - 1], plot._fullLayout.xaxis.range]; }}""")

    zoomed_at = shown()[0]
    wait_for(lambda: shown()[0] >= zoomed_at + 3, 30, lambda: f"the chart stopped at {shown()}")
    x_range = shown()[1]  # several refreshes later
    app.click("Pause")
    assert x_range == [0, 3], f"the zoom was lost on a refresh: x range {x_range}"
    print("frames watched:", seen)  # shown with pytest -s
    assert seen["frames"] > 60 and seen["most"] > 5, seen
    assert seen["costBack"] == 0, f"the cost chart went back to an earlier iteration: {seen}"
    assert seen["faded"] == 0, f"the cost chart faded while it was redrawn: {seen}"
    assert seen["imageBlank"] == 0, f"the weight image was blank in some frames: {seen}"
    # The live chart is redrawn in place (st.plotly_chart, which mounts a new chart on each
    # update, showed an empty box in ~1% of frames).
    assert seen["costBlank"] == 0, f"the cost chart was blank in some frames: {seen}"
    app.assert_clean()
