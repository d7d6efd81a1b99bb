"""The Sweep page in a real browser: start a small sweep on a 2D playground task, watch the trials
table fill and the parallel-coordinates chart appear, and load the best trial into the Train page."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]


def test_a_small_sweep_from_the_page_and_its_best_trial_on_the_train_page(open_app):
    app = open_app("sweep")
    page = app.page
    expect(page.locator("h1").first).to_have_text("Sweep")
    base = page.locator('[data-testid="stSelectbox"]', has_text="Base set-up")
    if not base.is_visible():  # the set-up is folded away once a sweep exists
        page.get_by_text("New sweep").click()
    base.click()
    page.get_by_role("option", name="2D playground: spiral").click()
    app.wait_until_idle()
    rates = page.get_by_role("textbox", name="Learning rate (log scale)")
    rates.fill("0.01,0.1,0.3")
    rates.press("Enter")
    app.wait_until_idle()
    iterations = page.get_by_role("spinbutton", name="Iterations per trial")
    iterations.fill("60")
    iterations.press("Enter")
    app.wait_until_idle()
    app.click("Start sweep")

    # The trials table shows every trial, then they finish; the chart of settings against accuracy
    # appears with the first finished trial.
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(r"finished · 3/3 done"))).to_be_visible(timeout=120_000)
    expect(page.locator(".js-plotly-plot .parcoords").first).to_be_visible(timeout=30_000)
    app.screenshot("sweep-finished")
    app.assert_clean()

    app.click("Load into Train")
    expect(page.locator("h1").first).to_have_text("Train", timeout=60_000)
    app.wait_until_idle()
    expect(page.get_by_text(re.compile(r"Restored a network at iteration 60"))).to_be_visible(timeout=30_000)
    app.screenshot("sweep-best-on-train")
    app.assert_clean()
