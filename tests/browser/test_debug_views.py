"""The debugging views in a real browser: a digit drawn with the mouse on the Inspect page's canvas,
the loss landscape (a progress bar, then contours; Cancel), and unit health live on the Train page."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import KEYED_PLOT, screenshot_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A chart drawn with st.plotly_chart(key=...): its plotly.js div, or null.
PLOTLY_CHART = """(key) => document.querySelector(`.st-key-${key} .js-plotly-plot`)"""


def open_inspect(open_app, query):
    """The Train page at `query`, ten Steps (a network to inspect), then the Inspect page."""
    app = open_app(query=query)
    app.click("Step ×10")
    app.page.get_by_text(re.compile(r"^iteration 10 ")).wait_for(timeout=90_000)
    app.page.locator('[data-testid="stSidebarNav"] a', has_text="Inspect").click()
    expect(app.page.locator("h1", has_text="Inspect")).to_be_visible()
    app.wait_until_idle()
    return app


def test_a_digit_drawn_with_the_mouse_is_prepared_and_classified(open_app):
    requests = []
    app = open_inspect(open_app, "subset=300")
    app.page.on("request", lambda request: requests.append(request.url))
    canvas = app.page.locator(".st-key-draw_canvas canvas").last  # Fabric.js's top (event) canvas
    canvas.scroll_into_view_if_needed()
    expect(canvas).to_be_visible(timeout=30_000)
    box = canvas.bounding_box()
    assert round(box["width"]) == 280 and round(box["height"]) == 280
    mouse = app.page.mouse
    # A "7": a bar across the top, then a diagonal stroke down to the lower left.
    mouse.move(box["x"] + 80, box["y"] + 60)
    mouse.down()
    for x, y in [(200, 60), (185, 110), (160, 170), (135, 230)]:
        mouse.move(box["x"] + x, box["y"] + y, steps=8)
    mouse.up()
    answer = app.page.get_by_text(re.compile(r"^The network says: "))
    expect(answer).to_be_visible(timeout=60_000)
    assert re.match(r"The network says: [58] \(\d+\.\d%\)", answer.inner_text()), answer.inner_text()
    app.wait_until_idle()
    # The 28 x 28 input as the network sees it: the stroke 20 pixels high, its centre of mass in the middle.
    ink = app.page.evaluate(f"""() => {{
        const plot = ({PLOTLY_CHART})('draw_input');
        const z = plot && plot.data && plot.data[0].z;
        if (!z) return null;
        const rows = z.map((row, r) => row.some((v) => v > 0) ? r : -1).filter((r) => r >= 0);
        let total = 0, row = 0, column = 0;
        z.forEach((values, r) => values.forEach((v, c) => {{ total += v; row += r * v; column += c * v; }}));
        const height = rows[rows.length - 1] - rows[0] + 1;
        return {{total, height, row: row / total, column: column / total}};
    }}""")
    assert ink is not None and ink["total"] > 10 and ink["height"] == 20, ink
    assert abs(ink["row"] - 14) <= 0.5 and abs(ink["column"] - 14) <= 0.5, ink
    bars = app.page.evaluate(f"() => ({PLOTLY_CHART})('draw_proba')?.data[0].y")
    assert bars is not None and len(bars) == 2 and abs(sum(bars) - 1) < 1e-3, bars
    expect(app.page.locator(".st-key-draw_layer_1 .js-plotly-plot")).to_be_visible()
    app.screenshot("inspect-draw-digit")
    app.assert_clean()
    # Offline: the canvas component's script and everything the page loads come from the app itself.
    outside = [url for url in requests if not url.startswith((app.server.url, "data:", "blob:"))]
    assert not outside, outside


def test_the_landscape_shows_progress_then_contours(open_app):
    # subset=3000: the landscape's 2,000-image sample, so the 25 x 25 grid takes a few seconds
    app = open_inspect(open_app, "subset=3000")
    compute = app.button("Compute landscape")
    compute.scroll_into_view_if_needed()
    compute.click()
    expect(app.page.locator('[data-testid="stProgress"]')).to_be_visible(timeout=30_000)
    expect(app.page.get_by_text(re.compile(r"Computing the random plane: row \d+ of 25"))).to_be_visible()
    app.page.screenshot(path=str(screenshot_dir() / "inspect-landscape-progress.png"))  # quick: the viewport
    app.page.wait_for_function(
        f"() => ({PLOTLY_CHART})('landscape_chart')?.data?.[0]?.type === 'contour'", timeout=120_000)
    expect(app.page.get_by_text(re.compile(r"625 of 625 points in [\d.]+ s"))).to_be_visible()
    expect(app.page.locator('[data-testid="stProgress"]')).to_have_count(0)
    app.wait_until_idle()
    app.screenshot("inspect-landscape")
    app.assert_clean()


def test_the_landscape_can_be_cancelled(open_app):
    # The deep network at 51 x 51 points: about half a minute of work, time enough to press Cancel.
    app = open_inspect(open_app, "subset=3000&layers=392,196,98,1")
    slider = app.page.locator(".st-key-landscape_resolution").get_by_role("slider")
    slider.scroll_into_view_if_needed()
    slider.focus()
    slider.press("End")  # 51 x 51 points: long enough to cancel
    expect(app.page.locator(".st-key-landscape_resolution")).to_contain_text("51")
    app.wait_until_idle()
    app.click("Compute landscape")
    expect(app.page.get_by_text(re.compile(r"row \d+ of 51"))).to_be_visible(timeout=30_000)
    app.click("Cancel")
    expect(app.page.get_by_text(re.compile(r"Cancelled: the rest of the grid"))).to_be_visible(timeout=60_000)
    app.wait_until_idle()
    app.screenshot("inspect-landscape-cancelled")
    app.assert_clean()


def test_unit_health_is_drawn_live_on_the_train_page(open_app, poll):
    """Needs the Train page to draw studio.analysis_figures.unit_health_figure with
    live_plot(..., key="unit_health_chart") beside the gradient chart."""
    app = open_app(query="subset=300")
    app.click("Step ×10")
    app.page.get_by_text(re.compile(r"^iteration 10 ")).wait_for(timeout=90_000)

    def points():
        return app.page.evaluate(
            f"() => {{ const plot = ({KEYED_PLOT})('unit_health_chart'); if (!plot) return null;"
            " const trace = (plot._fullData || plot.data || [])[0]; return trace ? trace.x.length : 0; }")

    poll(lambda: (points() or 0) >= 10, 60, lambda: f"unit health chart points: {points()}\n{app.debug()}")
    app.screenshot("train-unit-health")
    app.assert_clean()
