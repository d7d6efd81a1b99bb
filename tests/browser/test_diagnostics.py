"""Why training fails, in a real browser (issue 20): the tutorial at learning rate 10 raises a banner at
the top of the Train page within 20 steps, stating λ_max above 2/η, and the stability panel shows what
was measured. Every wait has a deadline and fails saying what the page showed."""

import re

from tests.browser.conftest import wait_for

BANNER = '[data-testid="stMain"] [data-testid="stAlertContentError"]'
MEASURED = re.compile(r"λ_max ([\d.,]+) at iteration (\d+) > 2/η = ([\d.,]+)")
RISING = re.compile(r"to iteration (\d+)\)")


def number(text):
    return float(text.replace(",", ""))


def test_the_tutorial_at_lr_10_is_explained_before_any_nan(open_app):
    app = open_app(query="learning_rate=10.0")
    app.assert_clean()
    page = app.page
    seen = []

    def banner():
        alerts = page.locator(BANNER)
        texts = [alerts.nth(i).inner_text() for i in range(alerts.count())]
        seen.append((status_or_none(page), texts))
        return next((text for text in texts if "Diverging" in text), None)

    app.click("Train")
    text = wait_for(banner, 180, lambda: f"no 'Diverging' banner; (status, alerts) seen last: {seen[-3:]}\n"
                                         f"{app.debug()}", interval=0.5)
    rising = RISING.search(text)
    assert rising and int(rising.group(1)) <= 20, f"the banner came after step 20: {text}"
    measured = MEASURED.search(text)
    assert measured, f"the banner states no λ_max against 2/η: {text}"
    value, limit = number(measured.group(1)), number(measured.group(3))
    assert limit == 0.2 and value > limit, text
    assert "the stability limit for this curvature is lr <" in text and "(now 10)" in text
    # At the top of the page: above the training controls.
    top = page.locator(BANNER).first.bounding_box()["y"]
    assert top < page.get_by_role("button", name="Train", exact=True).bounding_box()["y"]
    app.screenshot("diagnostics-01-banner")
    app.click("Pause")
    wait_for(lambda: "paused" in (status_or_none(page) or ""), 60,
             lambda: f"training did not pause: {status_or_none(page)}")
    panel = page.get_by_text(re.compile(r"^λ_max [\d.]+ [≤>] 2/η = 0.200"))
    wait_for(lambda: panel.count() > 0, 60, lambda: f"no λ_max reading under the chart\n{app.debug()}")
    app.screenshot("diagnostics-02-paused")
    app.assert_clean()


def status_or_none(page):
    line = page.get_by_text(re.compile(r"^iteration \d+"))
    return line.first.inner_text() if line.count() else None
