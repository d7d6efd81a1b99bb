"""Every page of the app in a real browser: before any network exists (a clear "train first" message,
never an exception) and after a few Steps (the pages draw their charts)."""

import re

import pytest
from playwright.sync_api import expect

from studio.pages import PAGES

QUICK = "subset=300"
# Pages that need a network say so and point to the Train page until one exists.
NEED_A_NETWORK = {"Inspect", "Math", "Gradient check"}
# Pages that draw without a network (they show the data of the set-up).
DRAW_WITHOUT_A_NETWORK = {"Data", "Playground"}  # Playground: its own network, built at once
# Buttons a page needs pressed before it draws its results (they run on the trained network), each
# with the text its result shows (waiting for it keeps the next click from interrupting the run).
ACTIONS = {"Gradient check": [("Run gradient check", "Checked at iteration"),
                         ("Find a learning rate", "Suggested learning rate")]}
# What a page draws: Plotly charts, images, tables, dataframes, LaTeX, the Playground's live network.
DRAWN = ('[data-testid="stPlotlyChart"], [data-testid="stImage"], [data-testid="stTable"], '
         '[data-testid="stDataFrame"], .katex, .st-key-pg_network iframe')


def slug(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@pytest.fixture(scope="module")
def pages(browser, streamlit_server):
    """The app's pages as the sidebar lists them (read once)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(streamlit_server.url)
        links = page.locator('[data-testid="stSidebarNav"] a')
        # Before app.py's navigation arrives a fresh server may list the pages/ folder's files: wait
        # for the app's own menu (its last page's title).
        expect(links.last).to_contain_text(PAGES[-1].title, timeout=60_000)
        # A link's text starts with its icon's name (e.g. "model_training"); the title is the last line.
        found = [(link.inner_text().strip().splitlines()[-1].strip(), link.get_attribute("href"))
                 for link in links.all()]
    finally:
        context.close()
    assert [title for title, _ in found][:1] == ["Train"], found
    assert len(found) >= 2, f"expected several pages in the sidebar, found {found}"
    return found


def test_every_page_before_any_network(open_app, pages):
    for title, href in pages:
        app = open_app(href.replace(app_root(href), ""), query=QUICK)
        expect(app.page.locator("h1").first).to_be_visible()
        app.wait_until_idle()
        if title in DRAW_WITHOUT_A_NETWORK:
            expect(app.page.locator(DRAWN).first).to_be_visible(timeout=60_000)
        app.page.wait_for_timeout(500)  # let a late element (an exception box) arrive
        app.screenshot(f"page-{slug(title)}-empty")
        app.assert_clean()
        if title in NEED_A_NETWORK:
            message = app.page.locator('[data-testid="stAlert"]', has_text="Train page")
            expect(message.first).to_be_visible()
        app.context.close()


def app_root(href):
    """The scheme and host part of a link, so a page can be opened by its path."""
    found = re.match(r"https?://[^/]+", href)
    return found.group(0) if found else ""


def test_every_page_after_a_few_steps(open_app, pages):
    app = open_app(query=QUICK)
    app.click("Step ×10")
    app.wait_points(lambda points: points >= 10, timeout=60)
    app.click("Step")
    app.wait_points(lambda points: points >= 11, timeout=30)
    app.assert_clean()

    for title, href in pages[1:]:
        app.page.locator(f'[data-testid="stSidebarNav"] a[href="{href}"]').click()
        expect(app.page.locator("h1").first).to_be_visible()
        app.wait_until_idle()
        for label, result in ACTIONS.get(title, []):
            app.click(label)
            expect(app.page.get_by_text(result).first).to_be_visible(timeout=60_000)
        # Same session (in-app navigation): the page sees the network trained above.
        drawn = app.page.locator(DRAWN)
        expect(drawn.first).to_be_visible(timeout=30_000)
        if title in NEED_A_NETWORK:
            first = app.page.locator('[data-testid="stAlert"]', has_text="on the Train page")
            expect(first).to_have_count(0)
        app.page.wait_for_timeout(500)
        app.screenshot(f"page-{slug(title)}-trained")
        app.assert_clean()

    app.page.locator(f'[data-testid="stSidebarNav"] a[href="{pages[0][1]}"]').click()
    expect(app.page.locator("h1").first).to_have_text("Train")
    app.wait_until_idle()
    app.screenshot("page-train-after-visiting-all")
    expect(app.page.get_by_text("iteration 11", exact=False).first).to_be_visible()
    app.assert_clean()
