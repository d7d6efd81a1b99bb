"""The Train page in a real browser: Train makes the cost chart grow, Pause stops it, Step adds exactly one
point, Reset empties it; bad sidebar values give an inline message and keep the run; never a traceback."""

import time

from playwright.sync_api import expect

# The charts refresh on a timer while training; two periods of stillness mean "stopped".
REFRESH_SECONDS = 1.0
# A quick set-up: the tutorial's network on 300 training images (a step takes a few ms).
QUICK = "subset=300"


def settled_points(app, periods: float = 2.0) -> int:
    """Wait for the point count to stay the same over `periods` refresh periods and return it."""
    before = app.plot_points()
    while True:
        time.sleep(periods * REFRESH_SECONDS)
        after = app.plot_points()
        if after == before:
            return after
        before = after


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
