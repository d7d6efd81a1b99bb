"""Projector mode (issue 19) in a real browser: the Train page's demo view fits one screen at 1280x720
and at 1920x1080 with chart tick labels of 18 px or more, and the keyboard shortcuts (Space, S)
drive training."""

import re

import pytest

from tests.browser.conftest import KEYED_PLOT, screenshot_dir, wait_for

QUICK = "subset=300"

# Each scrolling box that could hold the page: the document, Streamlit's main section and its app view.
SCROLL = """() => {
  const boxes = {document: document.scrollingElement};
  for (const id of ['stMain', 'stAppViewContainer']) {
    const el = document.querySelector(`[data-testid="${id}"]`);
    if (el) boxes[id] = el;
  }
  const out = {innerHeight: window.innerHeight};
  for (const [name, el] of Object.entries(boxes)) {
    out[name] = {scroll: el.scrollHeight, client: el.clientHeight};
  }
  return out;
}"""

# Computed font sizes (px) of every chart's x tick labels, per live chart key (inside its iframe).
TICK_SIZES = """(keys) => {
  const out = {};
  for (const key of keys) {
    const frame = document.querySelector(`.st-key-${key} iframe`);
    const doc = frame && frame.contentDocument;
    if (!doc) { out[key] = null; continue; }
    const texts = [...doc.querySelectorAll('.xtick text, .ytick text')];
    out[key] = texts.map((t) => parseFloat(doc.defaultView.getComputedStyle(t).fontSize));
  }
  return out;
}"""

# Bottom edge (px, in the viewport) of each essential view.
BOTTOMS = """(keys) => Object.fromEntries(keys.map((key) => {
  const el = document.querySelector(`.st-key-${key}`);
  return [key, el ? Math.round(el.getBoundingClientRect().bottom) : null];
}))"""

ESSENTIAL = ["status_line", "cost_chart", "gradient_chart"]


def status(app) -> str:
    return app.page.locator(".st-key-status_line").first.inner_text()


def iteration(app) -> int:
    """The status line's iteration; -1 before the network is built (no iteration shown)."""
    found = re.match(r"iteration (\d+)", status(app))
    return int(found.group(1)) if found else -1


@pytest.mark.parametrize("viewport", [(1280, 720), (1920, 1080)])
def test_train_demo_view_fits_one_screen_with_large_text(open_app, viewport):
    app = open_app(query=QUICK + "&demo=1", viewport=viewport)
    app.click("Step")
    sizes = {}

    def drawn():
        sizes.update(app.page.evaluate(TICK_SIZES, ["cost_chart", "gradient_chart"]))
        return all(sizes.values())

    wait_for(drawn, 120, lambda: f"the charts never drew tick labels: {sizes}\n{app.debug()}")
    app.wait_until_idle()
    assert iteration(app) == 1
    sizes.clear()
    drawn()
    for key, found in sizes.items():
        assert min(found) >= 18, f"{key}: tick labels {sorted(set(found))} px, want >= 18"
    status_px = app.page.evaluate(
        "() => parseFloat(getComputedStyle(document.querySelector('.st-key-status_line p')).fontSize)")
    assert status_px >= 18, f"status line {status_px} px"
    button_px = app.page.evaluate(
        "() => parseFloat(getComputedStyle([...document.querySelectorAll('[data-testid=\"stMain\"] button')]"
        ".find((b) => b.innerText.trim() === 'Step').querySelector('p')).fontSize)")
    assert button_px >= 18, f"buttons {button_px} px"

    scroll = app.page.evaluate(SCROLL)
    bottoms = app.page.evaluate(BOTTOMS, [*ESSENTIAL, "weights"])
    shot = screenshot_dir() / f"projector-train-{viewport[0]}x{viewport[1]}.png"
    app.page.screenshot(path=str(shot))  # the viewport only: what the room sees
    for name in ("document", "stMain", "stAppViewContainer"):
        if name in scroll:
            box = scroll[name]
            assert box["scroll"] <= scroll["innerHeight"], f"{name} scrolls: {scroll}, bottoms {bottoms}"
    for key in ESSENTIAL:
        assert bottoms[key] is not None and bottoms[key] <= viewport[1], f"{key} below the fold: {bottoms}"
    app.assert_clean()


def test_keyboard_shortcuts_step_train_and_pause(open_app):
    app = open_app(query=QUICK)
    app.page.get_by_text("Keys:").first.wait_for()
    # The listener is set up by a script on the page, a moment after the legend shows.
    app.page.wait_for_function("() => typeof window.__backpropShortcuts === 'function'", timeout=30_000)
    app.page.evaluate("() => document.activeElement && document.activeElement.blur()")  # no input has focus
    app.page.keyboard.press("s")
    wait_for(lambda: iteration(app) >= 1, 90, lambda: f"S did not step: {status(app)!r}\n{app.debug()}")
    app.wait_until_idle()
    stepped = iteration(app)
    app.page.keyboard.press("s")
    wait_for(lambda: iteration(app) == stepped + 1, 30,
             lambda: f"the second S did not step once: {status(app)!r}")

    app.wait_until_idle()
    app.page.keyboard.press(" ")
    pause = app.button("Pause")
    wait_for(lambda: pause.is_enabled(), 30, lambda: "Space did not start training (Pause stays disabled)")
    wait_for(lambda: iteration(app) > stepped + 5, 60,
             lambda: f"training does not advance: {status(app)!r}")
    app.page.keyboard.press(" ")
    wait_for(lambda: app.button("Train").is_enabled(), 30,
             lambda: "Space did not pause (Train stays disabled)")
    app.wait_until_idle()
    paused = iteration(app)
    app.page.wait_for_timeout(1500)
    assert iteration(app) == paused, "training went on after the pause"

    # A key typed into an input is text, not a shortcut.
    box = app.page.get_by_label("Training subset", exact=True)
    box.click()
    box.press("s")
    app.page.wait_for_timeout(1000)
    assert iteration(app) == paused, "an S typed into an input stepped"
    app.assert_clean()


# In a chart's iframe: each annotation's font size, the ones that overlap an axis tick label or
# another annotation, and the ones cut off by the chart's edge.
ANNOTATIONS = """(key) => {
  const frame = document.querySelector(`.st-key-${key} iframe`);
  const doc = frame && frame.contentDocument;
  if (!doc || !doc.querySelector('.main-svg')) return null;
  const box = (el) => el.getBoundingClientRect();
  const svg = box(doc.querySelector('.main-svg'));
  const notes = [...doc.querySelectorAll('.annotation-text')];
  const ticks = [...doc.querySelectorAll('.xtick text, .ytick text')];
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1
                        && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const out = {sizes: [], overlaps: [], cut: []};
  notes.forEach((note, i) => {
    const a = box(note);
    out.sizes.push(parseFloat(doc.defaultView.getComputedStyle(note).fontSize));
    const outside = a.left < svg.left - 1 || a.right > svg.right + 1 || a.top < svg.top - 1
                    || a.bottom > svg.bottom + 1;
    if (outside) out.cut.push(note.textContent);
    for (const t of ticks) if (hit(a, box(t))) out.overlaps.push([note.textContent, t.textContent]);
    notes.slice(i + 1).forEach((other) => {
      if (hit(a, box(other))) out.overlaps.push([note.textContent, other.textContent]);
    });
  });
  return out;
}"""


@pytest.mark.parametrize("viewport", [(1280, 720), (1920, 1080)])
def test_playground_demo_view_fits_one_screen_with_large_text(open_app, viewport):
    """`demo=1` on the Playground: the data and features, an 8-unit network and the output on one screen."""
    app = open_app("playground", "dataset=spiral&layers=8,8,1&demo=1", viewport=viewport)
    sizes = {}

    def drawn():
        sizes.update(app.page.evaluate(TICK_SIZES, ["pg_boundary"]))
        frame = app.page.evaluate(KEYED_PLOT, "pg_network")
        return all(sizes.values()) and frame

    wait_for(drawn, 60, lambda: f"the maps never drew: {sizes}\n{app.debug()}")
    app.wait_until_idle()
    assert min(sizes["pg_boundary"]) >= 18, f"output map ticks {sorted(set(sizes['pg_boundary']))} px"
    # The output's legend and the network's labels: projector-sized, clear of the ticks, not cut off.
    for key in ("pg_boundary", "pg_network"):
        notes = app.page.evaluate(ANNOTATIONS, key)
        assert notes and min(notes["sizes"]) >= 18, f"{key}: annotation sizes {notes}"
        assert not notes["overlaps"] and not notes["cut"], f"{key}: overlapping or cut-off text {notes}"
    scroll = app.page.evaluate(SCROLL)
    bottoms = app.page.evaluate(BOTTOMS, ["pg_datasets", "pg_network", "pg_boundary"])
    app.page.screenshot(path=str(screenshot_dir() / f"projector-playground-{viewport[0]}x{viewport[1]}.png"))
    for name in ("document", "stMain", "stAppViewContainer"):
        if name in scroll:
            assert scroll[name]["scroll"] <= scroll["innerHeight"], f"{name} scrolls: {scroll} {bottoms}"
    for key, bottom in bottoms.items():
        assert bottom is not None and bottom <= viewport[1], f"{key} below the fold: {bottoms}"
    app.assert_clean()


# The Export expander's top, in page coordinates (Streamlit scrolls inside stMain).
EXPORT_Y = """() => {
  const el = [...document.querySelectorAll('[data-testid="stExpander"]')]
    .find((e) => e.innerText.includes('Export and import'));
  const main = document.querySelector('[data-testid="stMain"]');
  return el ? Math.round(el.getBoundingClientRect().top + (main ? main.scrollTop : 0)) : null;
}"""


BLOCKS = """() => [...document.querySelector(
  '[data-testid="stMainBlockContainer"] [data-testid="stVerticalBlock"]').children]
  .map((e) => [e.getAttribute('data-testid') || e.className.slice(0, 30),
                        Math.round(e.getBoundingClientRect().height)])"""


def test_first_train_moves_nothing_below_the_live_views(open_app):
    app = open_app(query=QUICK)
    before = wait_for(lambda: app.page.evaluate(EXPORT_Y), 30, lambda: f"no Export expander\n{app.debug()}")
    blocks_before = app.page.evaluate(BLOCKS)
    app.click("Train")
    app.wait_points(lambda points: points > 5, timeout=60)
    seen = []

    def drawn():  # every live view has drawn: the weight image and the gradient chart are there
        seen.append(app.page.evaluate(EXPORT_Y))
        return app.page.locator(".st-key-gradient_chart iframe").count() and app.page.locator(
            'img[alt$="while training"], .st-key-weights_heatmap').count()

    wait_for(drawn, 60, lambda: f"the live views never drew; Export at {seen[-3:]}\n{app.debug()}")
    after = app.page.evaluate(EXPORT_Y)
    blocks_after = app.page.evaluate(BLOCKS)
    app.click("Pause")
    assert abs(after - before) <= 5, (f"the Export expander moved from y = {before} to {after} px; the "
                                      f"page's blocks (test id, height) before {blocks_before}, "
                                      f"after {blocks_after}")
    app.assert_clean()
