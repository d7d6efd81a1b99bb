"""The logic the pages used to hold, tested without Streamlit: the live views' refresh rates and
keeping the set-up in step with the link."""

import dataclasses

from backprop.config import TrainConfig, preset
from studio.refresh import TRAIN_PAGE, Rate, RefreshRates
from studio.session import Studio
from studio.widgets import setup_from_link


def test_a_cheap_view_keeps_its_base_period_and_a_slow_one_slows_down():
    state = {}
    rates = RefreshRates({"fast": Rate(0.45, 0.5), "slow": Rate(2.0)}, state)
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
    rates = RefreshRates(TRAIN_PAGE, {})
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
