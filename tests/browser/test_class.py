"""A class at once: many Playground sessions training on one server each get their maps.

The sessions are screenless (tests/browser/screenless.py): what a tab's frontend sends, each
fragment's timed reruns included, with nothing drawn, as a class's browsers are on the students' own
machines. Before the server shared its drawing among sessions (studio/refresh.py ServerLoad, the
pool waiting for drawing), 8 such sessions asked for ~10 fragment runs a second each and Streamlit
dropped every run's unsent messages when the next run started: the maps reached them at 0-0.1 Hz.
"""

import re
import time

from tests.browser.screenless import ScreenlessClass

SESSIONS = 8
WINDOW_SECONDS = 10.0
# In some WINDOW_SECONDS, every session at once: 1 Hz, issue 19's target for a class. Measured on the
# development machine, the fewest any session got in a 10 s window: 21-27 (0-4 before the fix).
NEW_MAPS = 10
DEADLINE_SECONDS = 60.0


def iteration(session):
    for text in reversed(session.tally.texts):
        found = re.search(r"iteration (\d+)", text)
        if found:
            return int(found.group(1))
    return 0


def maps(session):
    return session.tally.figures.get("pg_boundary", 0)


def test_every_session_of_a_class_trains_and_gets_new_maps(streamlit_server):
    group = ScreenlessClass(streamlit_server.url, "playground", [f"seed={n}" for n in range(1, SESSIONS + 1)])
    try:
        group.open("Train", timeout=120)
        group.press("Train")
        seen = []  # (time, maps per session)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            now = time.monotonic()
            seen.append((now, [maps(session) for session in group.sessions]))
            earlier = [counts for at, counts in seen if at <= now - WINDOW_SECONDS]
            if earlier and all(count - old >= NEW_MAPS
                               for count, old in zip(seen[-1][1], earlier[-1], strict=True)):
                break
            time.sleep(0.5)
        else:
            last = seen[-1][1]
            ago = next((counts for at, counts in reversed(seen) if at <= seen[-1][0] - WINDOW_SECONDS), None)
            raise AssertionError(
                f"within {DEADLINE_SECONDS:.0f} s no {WINDOW_SECONDS:.0f} s in which each session got "
                f">= {NEW_MAPS} new maps: maps now {last}, {WINDOW_SECONDS:.0f} s before {ago}; iterations "
                f"{[iteration(session) for session in group.sessions]}; server log:\n"
                f"{streamlit_server.output(20)}")
        iterations = [iteration(session) for session in group.sessions]
        assert all(n > 0 for n in iterations), iterations
        assert not any(session.tally.exceptions for session in group.sessions), [
            session.tally.exceptions for session in group.sessions]
        assert not any(session.tally.closed for session in group.sessions)  # no session lost
    finally:
        group.close()
