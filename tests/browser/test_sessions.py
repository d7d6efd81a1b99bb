"""Two browser sessions at once: each trains its own set-up without touching the other, and closing a
tab stops its training thread.

The server runs with a cap of two training threads (BACKPROP_MAX_TRAINING_THREADS=2), which makes a
leftover thread visible from outside: a third Train is refused while two threads live, and a new tab
can train again only once a closed tab's thread has really stopped. When the app also prints
"backprop-studio: training threads running: N", the count itself is checked. Playground networks
are small runs (backprop.scheduler): they share the server's pool past that cap, and a closed
Playground tab ends its run too.
"""

import re
from urllib.parse import parse_qsl

import numpy as np
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from backprop.data import load_task
from backprop.trainer import Trainer
from studio.url_state import query_to_config
from tests.browser.conftest import KEYED_PLOT, AppPage, status_line

SERVER_ENV = {"BACKPROP_MAX_TRAINING_THREADS": "2"}
SLOW = "subset=300&learning_rate=0.01&iterations=100000"
FAST = "subset=300&learning_rate=0.5&iterations=100000"
# A big run (its own capped thread) that costs a third of SLOW's step: it only has to hold a slot
# while the Playground tabs train (on CI's 2 cores, two SLOW holders left the tabs starved).
HOLD = "subset=100&learning_rate=0.01&iterations=100000"
REFUSED = "already training"
RELEASE_SECONDS = 30  # a closed tab's session is released when its websocket closes; allow for a slow one


def costs(app):
    return app.page.evaluate(f"() => Array.from(({KEYED_PLOT})('cost_chart')._fullData[0].y)")


def costs_shown(app, poll, at_least):
    """The cost chart's values once it shows at least `at_least` points (a full page rerun can
    briefly show the chart as the rerun drew it, before the live view catches up)."""
    shown = []

    def enough():
        shown[:] = costs(app)
        return len(shown) >= at_least

    poll(enough, 30, lambda: f"the cost chart shows {len(shown)} points, expected >= {at_least}")
    return shown


def expected_costs(query, steps):
    """The costs this set-up gives when trained alone, in this process, with the engine."""
    config, _, problems = query_to_config(dict(parse_qsl(query)))
    assert not problems, problems
    data = load_task(dataset=config.dataset, digits=config.digits, subset=config.subset, seed=config.seed,
                     dtype=config.dtype, path=config.data_path)
    trainer = Trainer.from_config(config, data)
    return [record["cost"] for record in trainer.step(steps)]


def status(app):
    return status_line(app.page)


def start_training(app, poll, timeout=RELEASE_SECONDS):
    """Press Train until the chart grows (a refusal at the thread cap is retried until timeout)."""

    def trained():
        if (app.plot_points() or 0) > 3:
            return True
        if app.button("Train").is_enabled():  # not running: never pressed, or refused at the cap
            try:
                app.button("Train").click(timeout=3000)
            except PlaywrightTimeout:  # it started meanwhile (the button turns disabled)
                pass
        return False

    poll(trained, timeout, lambda: f"Train never started (a closed tab's thread still alive?)\n{app.debug()}")


def assert_thread_count(server, expected, poll, apps=()):
    """Checked only when the app prints the count (see the module docstring); a failure shows the
    app's count lines and the status line and messages of `apps`."""
    if server.training_threads() is None:
        return

    def report():
        pages = []
        for app in apps:
            try:
                text = app.text()
            except Exception as error:  # a closed tab
                text = str(error)
            lines = [line for line in text.splitlines()
                     if line.startswith("iteration") or re.search("stopped|diverged", line)]
            pages.append(" | ".join(lines) if lines else "no status line; the page shows: " + text[:300])
        return (f"training threads: {server.training_threads()}, expected {expected}\n"
                + "\n".join([line for line in server.lines if "backprop-studio" in line][-20:])
                + "".join(f"\npage: {page}" for page in pages))

    poll(lambda: server.training_threads() == expected, RELEASE_SECONDS, report)


def test_two_sessions_train_different_setups_at_once(open_app, poll):
    slow, fast = open_app(query=SLOW), open_app(query=FAST)
    slow.click("Train")
    fast.click("Train")
    slow.wait_points(lambda points: points > 15, timeout=60)
    fast.wait_points(lambda points: points > 15, timeout=60)

    # Each page shows its own set-up: the learning rate in its sidebar and in its URL.
    slider = '[data-testid="stSidebar"] [data-testid="stSlider"]'
    expect(slow.page.locator(slider).first).to_contain_text("0.01")
    expect(fast.page.locator(slider).first).to_contain_text("0.5")
    assert "learning_rate=0.01" in slow.page.url and "learning_rate=0.5" in fast.page.url
    # Each chart is exactly what its own set-up gives when trained alone: no cross-talk.
    for app, query in ((slow, SLOW), (fast, FAST)):
        shown = costs_shown(app, poll, 15)[:15]
        np.testing.assert_allclose(shown, expected_costs(query, 15), rtol=1e-9, err_msg=query)
    assert abs(costs_shown(slow, poll, 11)[10] - costs_shown(fast, poll, 11)[10]) > 1e-3
    assert_thread_count(slow.server, 2, poll)

    # Pausing one leaves the other training.
    slow.click("Pause")
    expect(slow.page.get_by_text(re.compile(r"^iteration \d+ · .* · paused")).first).to_be_visible()
    paused_at = slow.plot_points()
    growing_from = fast.plot_points()
    fast.wait_points(lambda points: points > growing_from + 5, timeout=30)
    assert slow.plot_points() == paused_at
    assert "paused" not in status(fast)
    slow.screenshot("sessions-slow-paused")
    fast.screenshot("sessions-fast-training")
    slow.assert_clean()
    fast.assert_clean()


def test_closing_tabs_stops_their_threads(open_app, poll):
    # A sentinel session trains all along and takes one of the two slots, so each new tab can train
    # only if the tab closed before it really stopped its thread.
    sentinel = open_app(query=SLOW)
    start_training(sentinel, poll)
    first = open_app(query=FAST)
    start_training(first, poll)
    server = first.server
    assert_thread_count(server, 2, poll)

    # At the cap a third session is refused: this is what makes a leftover thread visible.
    refused = open_app(query=FAST)
    refused.click("Train")
    expect(refused.page.get_by_text(REFUSED).first).to_be_visible()
    refused.screenshot("sessions-third-refused")
    refused.assert_clean()
    first.assert_clean()
    first.context.close()
    start_training(refused, poll)  # the closed tab's thread stopped and freed its slot
    assert_thread_count(server, 2, poll)
    closing = refused

    for _ in range(3):
        closing.assert_clean()
        closing.context.close()
        assert_thread_count(server, 1, poll)
        closing = open_app(query=FAST)
        start_training(closing, poll)

    # The sentinel trained on, untouched, through all of it.
    before = sentinel.plot_points()
    sentinel.wait_points(lambda points: points > before, timeout=30)
    assert "paused" not in status(sentinel)
    sentinel.assert_clean()


def iteration(app):
    return int(re.match(r"iteration (\d+)", status(app)).group(1))


def test_playground_tabs_train_past_the_cap_and_closing_them_ends_their_runs(open_app, poll):
    # Two big runs hold both of the cap's threads: a third big one is refused ...
    holders = [open_app(query=HOLD + "&seed=1"), open_app(query=HOLD + "&seed=2")]
    for app in holders:
        start_training(app, poll)
    server = holders[0].server
    assert_thread_count(server, 2, poll)
    refused = open_app(query=HOLD + "&seed=3")
    refused.click("Train")
    expect(refused.page.get_by_text(REFUSED).first).to_be_visible()

    # ... while three Playground tabs train beside them, none refused, all in the count.
    class_ = [open_app("playground", f"seed={seed}") for seed in (1, 2, 3)]
    for app in class_:
        app.click("Train")
    for app in class_:
        expect(app.button("Pause")).to_be_visible(timeout=60_000)
        start = iteration(app)
        poll(lambda app=app, start=start: iteration(app) > start + 50, 60,
             lambda app=app: f"the Playground tab does not train\n{app.debug()}")
        assert REFUSED not in app.text()
    assert_thread_count(server, 5, poll, holders + class_)
    class_[0].screenshot("sessions-playground-past-the-cap")

    # Closing the Playground tabs ends their runs; the big ones train on.
    for app in class_:
        app.assert_clean()
        app.context.close()
    assert_thread_count(server, 2, poll)
    for app in holders:
        before = app.plot_points()
        app.wait_points(lambda points, before=before: points > before, timeout=30)
        app.context.close()
    assert_thread_count(server, 0, poll)


def test_a_dropped_connection_gets_its_runs_back(browser, streamlit_server, poll):
    """The websocket drops (both ends closed, as a network failure would) while the tab's Train page
    run and its Playground run train: the tab reconnects to its session, and both runs go on from
    where they were, not from new networks."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    sockets = []

    def through_a_route(socket):  # every websocket of the tab passes here, so the test can cut it
        sockets.append((socket, socket.connect_to_server()))

    def served(condition):  # Playwright runs the route's handler only inside its own calls
        return lambda: app.page.wait_for_timeout(100) or condition()

    def menu(page_name):
        app.page.locator('[data-testid="stSidebarNav"] a', has_text=page_name).click()
        app.wait_until_idle()

    try:
        context.route_web_socket(re.compile(r"/_stcore/stream"), through_a_route)
        app = AppPage(context, streamlit_server).open("", FAST)
        start_training(app, poll)
        poll(lambda: iteration(app) > 30, 60, lambda: f"the Train page's run does not train\n{app.debug()}")
        trained = app.wait_points(lambda points: points > 30)  # a rerun may have the chart away a moment
        menu("Playground")
        app.click("Train")
        poll(lambda: iteration(app) > 30, 60, lambda: f"the Playground does not train\n{app.debug()}")

        to_page, to_server = sockets[-1]
        to_server.close()
        to_page.close()
        dropped_at = iteration(app)
        poll(served(lambda: len(sockets) > 1), 60, lambda: f"the tab never reconnected\n{app.debug()}")
        poll(served(lambda: streamlit_server.output(200).count("reconnected after") == 2), 60,
             lambda: f"the server did not give the session both Studios back\n{app.debug()}")
        poll(lambda: iteration(app) > dropped_at + 30 and "paused" not in status(app), 60,
             lambda: f"the Playground did not go on after the reconnect (at {dropped_at})\n{app.debug()}")
        expect(app.page.get_by_text("connection dropped").first).to_be_visible()

        menu("Train")  # its run was taken back with the session (not when the page was shown again)
        poll(lambda: "paused" not in status(app) and (app.plot_points() or 0) > trained + 30, 60,
             lambda: f"the Train page's run did not go on after the reconnect\n{app.debug()}")
        app.screenshot("sessions-reconnected")
        app.assert_clean()
    finally:
        context.close()
    assert_thread_count(streamlit_server, 0, poll)
