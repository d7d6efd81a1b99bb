"""A Studio's loss-landscape job (studio/landscapes.py, the Inspect page): refused past the session's
memory budget before anything is allocated, one at a time, and ended by Cancel, a Reset or the end
of its browser session within a second (issue 21 item 9)."""

import dataclasses
import time

from backprop.config import preset
from backprop.errors import InputError
from backprop.runs import RunStore
from backprop.threads import active_training_threads
from studio import landscapes, session
from studio.inspection import inspect_network


def wide_studio(use_studio=None, layers=(2048, 2048, 1), subset=2000):
    """A Studio whose landscape points cost seconds each (2,000 samples through 2048 x 2048)."""
    config = dataclasses.replace(preset("tutorial"), layers=list(layers), subset=subset, eval_every=1000)
    studio = session.Studio(config=config, store=RunStore())
    if use_studio is not None:
        use_studio(studio)
    studio.build()
    return studio


def ended_within(task, seconds):
    """Whether the task's thread ends within `seconds` (the job's own part: under a second on an idle
    machine; the bound leaves room for a busy one, far below the whole grid it used to compute)."""
    started = time.perf_counter()
    assert task.wait(30)
    return time.perf_counter() - started < seconds


def test_release_cancels_the_studios_job_within_a_second():
    """What Studio.release (a Reset, a closed tab) calls: the job's thread ends within a second, and
    its training slot is free."""
    studio = wide_studio()
    task = landscapes.start_landscape(studio, inspect_network(studio), "random", 51)
    time.sleep(0.5)
    assert task.running and landscapes.running_landscape(studio) is task
    released = time.perf_counter()
    landscapes.release_landscapes(studio)
    assert ended_within(task, 3.0), time.perf_counter() - released
    assert landscapes.running_landscape(studio) is None and active_training_threads() == 0
    studio.release()


def test_the_end_of_the_browser_session_cancels_the_job():
    """Streamlit releases the session-scoped watch when the tab closes (websocket gone): that alone
    ends the job, whether or not Studio.release calls release_landscapes."""
    studio = wide_studio()
    task = landscapes.start_landscape(studio, inspect_network(studio), "random", 51)
    time.sleep(0.5)
    landscapes._SessionWatch(studio).release()  # what on_release does
    assert ended_within(task, 3.0)
    studio.release()


def test_a_second_job_replaces_the_first():
    studio = wide_studio()
    first = landscapes.start_landscape(studio, inspect_network(studio), "random", 51)
    second = landscapes.start_landscape(studio, inspect_network(studio), "random", 3, seed=1)
    assert not first.running and not first.result.complete
    assert landscapes.running_landscape(studio) in (second, None)
    landscapes.release_landscapes(studio, wait=5)
    studio.release()


def test_inspect_refuses_the_issues_network_before_computing_and_says_what_fits(use_studio, open_page):
    """[784, 2048, 2048, 2048, 1], full batch on MNIST 5 vs 8: training takes 2.4 GB of the 3 GB budget
    and the landscape 776 MB more. The page says so under the button, names the plane and the
    resolution, and offers the batch size that leaves room; no job, no thread."""
    studio = wide_studio(use_studio, layers=(2048, 2048, 2048, 1), subset=None)
    at = open_page("pages/inspect.py")
    at.button(key="landscape_compute").click().run()
    assert not at.exception
    assert "landscape_job" not in at.session_state
    warning = next(w.value for w in at.warning if "landscape" in w.value)
    for words in ("**landscape**", "random plane at 25 x 25 points", "776.0 MB", "2.4 GB",
                  "3.0 GB per session", "batch size of at most"):
        assert words in warning, (words, warning)
    assert landscapes.running_landscape(studio) is None and active_training_threads() == 0
    studio.release()


def test_inspect_cancel_ends_the_job_within_a_second(use_studio, open_page):
    studio = wide_studio(use_studio)
    at = open_page("pages/inspect.py")
    at.select_slider(key="landscape_resolution").set_value(51)
    at.button(key="landscape_compute").click().run()
    task = at.session_state["landscape_job"]
    assert task.running
    at.button(key="landscape_cancel").click().run()
    assert ended_within(task, 3.0)
    assert not at.exception and not task.result.complete
    studio.release()


def test_a_release_while_the_plane_is_made_stops_the_job_before_it_starts(monkeypatch):
    """The tab closes (or a Reset comes) between Compute and the job's start: the task is registered
    before its plane is made, so the release reaches it and no thread is left computing."""
    studio = wide_studio(layers=(64, 1), subset=300)
    make_plane = landscapes.random_plane

    def plane_then_release(params, seed=0):
        plane = make_plane(params, seed=seed)
        landscapes.release_landscapes(studio)  # what the closed tab's release does meanwhile
        return plane
    monkeypatch.setattr(landscapes, "random_plane", plane_then_release)
    try:
        landscapes.start_landscape(studio, inspect_network(studio), "random", 25)
    except InputError as error:
        assert error.field == "landscape" and "cancelled before it started" in error.message
    else:
        raise AssertionError("the job started after its Studio was released")
    assert active_training_threads() == 0 and landscapes.running_landscape(studio) is None
    studio.release()
