"""The Sweep page in a real browser: start a small sweep on a 2D playground task, watch the trials
table fill and the plots of results appear, and load the best trial into the Train page."""

import re
import time

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

# The "New sweep" expander as the browser shows it: 'absent' until the page has drawn it, then
# 'open' or 'closed' (a closed expander's details are inert), with the script's run state.
NEW_SWEEP = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const script = app ? app.getAttribute('data-test-script-state') : 'no app';
  const box = [...document.querySelectorAll('[data-testid="stExpander"]')]
    .find((e) => (e.querySelector('summary') || e).innerText.includes('New sweep'));
  if (!box) return {expander: 'absent', script};
  const details = box.querySelector('[data-testid="stExpanderDetails"]');
  return {expander: details && !details.hasAttribute('inert') ? 'open' : 'closed', script};
}"""


def open_new_sweep(app, timeout=60):
    """The set-up's "Base set-up" box, visible. The expander is open on a fresh home and folded
    away once a sweep exists, and the page draws it only after its title (a direct link first
    runs through app.py), so this acts on what the page shows once it has drawn the expander and
    finished its run, never on one early look; it fails saying what it saw."""
    page = app.page
    base = page.locator('[data-testid="stSelectbox"]', has_text="Base set-up")
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = max(1.0, deadline - time.monotonic())
        try:
            page.wait_for_function("() => { const s = (" + NEW_SWEEP + ")(); "
                                   "return s.expander !== 'absent' && s.script === 'notRunning'; }",
                                   timeout=left * 1000)
        except Exception:  # reported below with what was seen
            break
        state = page.evaluate(NEW_SWEEP)
        seen.append(state)
        if state["expander"] == "closed":
            page.locator('[data-testid="stExpander"]').get_by_text("New sweep", exact=True).click()
        try:
            expect(base).to_be_visible(timeout=min(5.0, left) * 1000)
            return base
        except AssertionError:  # a rerun redrew the expander as the click landed: look again
            seen.append({**page.evaluate(NEW_SWEEP), "base set-up visible": base.is_visible()})
    raise AssertionError(f"Base set-up not visible after {timeout} s; the New sweep expander went "
                         f"{seen or [page.evaluate(NEW_SWEEP)]}\n{app.debug()}")


SPIRAL_BASE = "2D playground: spiral"  # the Base set-up choice the sweeps below start from


def start_spiral_sweep(app, learning_rates: str, iterations: int, timeout: float = 60):
    """On the Sweep page: a grid over the spiral's learning rates, `iterations` a trial, started
    (each wait up to `timeout` s; benchmarks/bench_load.py starts its sweep this way too)."""
    page = app.page
    expect(page.locator("h1").first).to_have_text("Sweep", timeout=timeout * 1000)
    base = open_new_sweep(app, timeout)
    base.click()
    page.get_by_role("option", name=SPIRAL_BASE).click()
    app.wait_until_idle(timeout)
    rates = page.get_by_role("textbox", name="Learning rate (log scale)")
    rates.fill(learning_rates)
    rates.press("Enter")
    app.wait_until_idle(timeout)
    box = page.get_by_role("spinbutton", name="Iterations per trial")
    box.fill(str(iterations))
    box.press("Enter")
    app.wait_until_idle(timeout)
    app.click("Start sweep")


def test_a_small_sweep_from_the_page_and_its_best_trial_on_the_train_page(open_app):
    app = open_app("sweep")
    page = app.page
    start_spiral_sweep(app, "0.01,0.1,0.3", 60)

    # The trials table shows every trial, then they finish; the plots of results appear with the
    # third finished trial (the optimisation history first).
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(r"finished · 3/3 done"))).to_be_visible(timeout=120_000)
    expect(page.locator(".js-plotly-plot .gtitle", has_text="Optimisation history").first).to_be_visible(
        timeout=30_000)
    app.screenshot("sweep-finished")
    app.assert_clean()

    app.click("Load into Train")
    expect(page.locator("h1").first).to_have_text("Train", timeout=60_000)
    app.wait_until_idle()
    expect(page.get_by_text(re.compile(r"Restored a network at iteration 60"))).to_be_visible(timeout=30_000)
    app.screenshot("sweep-best-on-train")
    app.assert_clean()
