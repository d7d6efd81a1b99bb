"""The logic the pages used to hold, tested without Streamlit: the live views' refresh rates and
keeping the set-up in step with the link."""

import dataclasses

from backprop.config import TrainConfig, preset
from studio.refresh import APPLY_SECONDS, TRAIN_PAGE, Rate, RefreshRates, ServerLoad
from studio.session import Studio
from studio.widgets import setup_from_link


def test_a_cheap_view_keeps_its_base_period_and_a_slow_one_slows_down():
    state = {}
    # a server of its own: other tests' sessions drawing in the last seconds would stretch the periods
    rates = RefreshRates({"fast": Rate(0.45, 0.5), "slow": Rate(2.0)}, state, "a session",
                         load=ServerLoad())
    assert rates.period("fast") == 0.45 and rates.period("slow") == 2.0  # nothing drawn yet
    rates.record("fast", 0.1)
    rates.record("slow", 0.5)  # drawing takes 25% of 2 s: more than the 10% it may
    assert rates.period("fast") == 0.45
    assert rates.period("slow") == 5.0
    assert rates.drifted("slow", in_use=2.0) and not rates.drifted("fast", in_use=0.45)
    rates.record("slow", 0.0)  # smoothed: one quick draw moves it only a fifth of the way
    assert 3.9 < rates.period("slow") < 4.1
    assert state["render_seconds_slow"] == rates.period("slow") * 0.1


def test_the_train_pages_views_describe_their_periods():
    rates = RefreshRates(TRAIN_PAGE, {}, "a session", load=ServerLoad())
    assert rates.describe() == "0.5 s, 0.9 s, 3.0 s, 5.0 s"


class Recorded:
    def __init__(self):
        self.filled = []

    def __call__(self, config):
        self.filled.append(config)


def test_a_link_sets_up_the_first_run_only_and_reports_what_it_dropped():
    studio, state, fill = Studio(config=preset("tutorial")), {}, Recorded()
    demo = setup_from_link(studio, state, {"layers": "64,1", "learning_rate": "abc", "demo": "1"}, fill)
    assert demo is True
    assert studio.config.layers == [64, 1] and fill.filled == [studio.config]
    assert [problem.split(":")[0] for problem in state["url_problems"]] == ["learning_rate"]
    # later runs: the link is not read again, and nothing is refilled while nothing changed
    assert setup_from_link(studio, state, {"layers": "32,1"}, fill) is None
    assert studio.config.layers == [64, 1] and len(fill.filled) == 1


def test_a_bare_link_keeps_a_set_up_another_page_proposed_and_changes_are_refilled():
    studio, state, fill = Studio(config=preset("tutorial")), {}, Recorded()
    studio.propose(dataclasses.replace(studio.config, layers=[16, 1]))
    setup_from_link(studio, state, {}, fill)
    assert studio.config.layers == [16, 1]
    studio.propose(TrainConfig(layers=[8, 1]).validated())  # e.g. Compare's "Load into the Train page"
    setup_from_link(studio, state, {}, fill)
    assert [config.layers for config in fill.filled] == [[16, 1], [8, 1]]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_servers_drawing_stretches_every_views_period_past_its_share():
    clock = Clock()
    load = ServerLoad(share=0.2, stale_seconds=5.0, clock=clock)
    assert load.stretch() == 1.0
    views = {"maps": Rate(0.15, 0.5), "fast": Rate(0.45, 0.5)}
    sessions = [RefreshRates(views, {}, f"session {n}", load=load) for n in range(4)]
    for rates in sessions:
        rates.record("maps", 0.02, cpu_seconds=0.015)  # 0.1 of a core at 0.15 s, each
    assert abs(load.stretch() - 2.0) < 1e-9  # 0.4 of a core asked, 0.2 allowed
    assert abs(sessions[0].period("maps") - 0.30) < 1e-9 and abs(sessions[0].period("fast") - 0.9) < 1e-9
    sessions[0].record("maps", 0.02, cpu_seconds=0.015)  # the same session again: counted once
    assert abs(load.stretch() - 2.0) < 1e-9
    clock.now += 6.0  # nothing drawn since (paused, closed): they ask nothing
    assert load.stretch() == 1.0 and sessions[0].period("maps") == 0.15


def test_a_drifted_period_is_applied_at_most_every_few_seconds():
    rates = RefreshRates({"maps": Rate(0.15, 0.5)}, {}, "a session", load=ServerLoad(clock=Clock()))
    rates.record("maps", 0.2)  # drawing takes 0.2 s: the period becomes 0.4 s
    assert rates.drifted("maps", in_use=0.15)
    assert rates.apply_now("maps", 0.15, now=10.0)
    assert not rates.apply_now("maps", 0.15, now=10.0 + APPLY_SECONDS / 2)  # a page run just applied it
    assert rates.apply_now("maps", 0.15, now=10.0 + APPLY_SECONDS)
    assert not rates.apply_now("maps", 0.4, now=100.0)  # in use is right: nothing to apply
