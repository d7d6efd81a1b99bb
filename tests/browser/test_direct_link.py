"""A link straight to a page, as the very first request a fresh server gets, still opens the app
(its menu and layout) rather than the page file alone: Streamlit's old `pages/` folder mode must
not take over."""

from playwright.sync_api import expect

from studio.pages import PAGES


def test_first_request_to_a_page_link_shows_the_apps_menu(open_app):
    app = open_app("compare")  # this module's server is fresh: no one has opened "/" yet
    page = app.page
    expect(page.get_by_role("heading", name="Compare runs")).to_be_visible(timeout=60_000)
    links = page.locator('[data-testid="stSidebarNav"] a')
    expect(links.first).to_contain_text("Train", timeout=30_000)
    titles = [link.inner_text().strip().splitlines()[-1].strip() for link in links.all()]
    assert titles == [page.title for page in PAGES], titles
