"""The Sweep page (AppTest): a bad space is refused naming the field; a small sweep started from the
page runs on a real local Dask cluster (started from the app's process), fills the trials table, and
its best trial loads into the Train page's Studio (with the user's eval_every); a resumed sweep's
trials keep their runs and trained networks. The plots of results: test_pages_sweep_plots.py."""

import time

import pytest

from backprop.runs import RunStore
from studio import session, sweep_runner

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def studio(use_studio):
    return use_studio(session.Studio())


@pytest.fixture
def page(open_page):
    return lambda: open_page("pages/sweep.py")


def set_up(at, learning_rates):
    at.selectbox(key="sweep_base").select("2D playground: spiral")
    at.text_input(key="sweep_vary_learning_rate").input(learning_rates)
    at.number_input(key="sweep_iterations").set_value(40)
    at.number_input(key="sweep_workers").set_value(2)
    at.button(key="sweep_start").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_a_bad_space_is_refused_naming_the_setting(studio, page):
    before = len(RunStore().list_sweeps())
    at = page()
    set_up(at, "0.1,abc")
    assert any("learning_rate" in error.value for error in at.error)
    assert len(RunStore().list_sweeps()) == before  # nothing started


def test_a_sweep_started_from_the_page_fills_the_table_and_loads_into_train(studio, page):
    at = page()
    set_up(at, "0.01,0.1")
    sweep_id = at.session_state["sweep_id"]
    assert sweep_runner.wait(sweep_id, 120), "the sweep did not finish"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert list(table["status"]) == ["finished", "finished"]
    assert sorted(float(rate) for rate in table["learning_rate"]) == [0.01, 0.1]
    # Two trials finished: the plots of results wait for a third (tests/test_pages_sweep_plots.py).
    assert any("once 3 trials have finished (2 so far)" in caption.value for caption in at.caption)
    assert "finished" in at.selectbox(key=f"sweep_pick_{sweep_id}").value

    best = sweep_runner.snapshot(sweep_id).best(1)[0]
    at.button(key="sweep_load").click()  # the best trial is the first choice
    at.run()
    assert studio.config.learning_rate == best.params["learning_rate"]
    assert studio.config.dataset == "spiral"
    assert studio.trainer is not None and studio.trainer.iteration == 40  # its trained network
    # Seam 5: the base's eval_every (the 2D playground base's 30), not one the sweep chose.
    assert studio.config.eval_every == 30


def test_a_resumed_sweep_keeps_its_trials_runs_and_loads_their_networks(studio, page):
    """Seam 4: after a resume, the page's table shows the trials' runs and Load into Train restores
    the trained network, not only the set-up."""
    base = sweep_runner.base_config("2D playground: spiral", studio)
    sweep_id = sweep_runner.start_new(base, ["learning_rate=0.01,0.1"], iterations=40, workers=2)
    assert sweep_runner.wait(sweep_id, 120), "the sweep did not finish"
    runs = RunStore().sweep_runs(sweep_id)
    assert sweep_runner.resume_sweep(sweep_id) == sweep_id  # what `backprop sweep --resume` does
    assert sweep_runner.wait(sweep_id, 120), "the resumed sweep did not finish"
    at = page()
    assert at.session_state["sweep_id"] == sweep_id
    assert sorted(at.dataframe[0].value["run"]) == sorted(run["id"] for run in runs)
    at.button(key="sweep_load").click()
    at.run()  # (the page alone has no Train page to switch to; the browser test goes there)
    assert studio.trainer is not None and studio.trainer.iteration == 40
    assert studio.config.eval_every == 30


def test_cancel_from_the_page_stops_the_sweep_and_offers_resume(studio, page):
    at = page()
    at.selectbox(key="sweep_base").select("2D playground: spiral")
    at.text_input(key="sweep_vary_learning_rate").input("0.01,0.1,0.3")
    at.number_input(key="sweep_iterations").set_value(100_000)
    at.number_input(key="sweep_workers").set_value(2)
    at.button(key="sweep_start").click()
    at.run()
    sweep_id = at.session_state["sweep_id"]
    deadline = time.monotonic() + 60
    while sweep_runner.snapshot(sweep_id).count("running") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    at.run()
    # Issue 18: Pause (no new trials) and Resume, beside Stop and Cancel.
    assert [at.button(key=key).label for key in ("sweep_pause", "sweep_stop", "sweep_cancel")] == \
        ["Pause", "Stop", "Cancel"]
    at.button(key="sweep_pause").click()
    at.run()
    assert sweep_runner.is_paused(sweep_id) and sweep_runner.snapshot(sweep_id).status == "paused"
    at.button(key="sweep_unpause").click()
    at.run()
    assert not sweep_runner.is_paused(sweep_id)
    asked = time.monotonic()
    at.button(key="sweep_cancel").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert sweep_runner.snapshot(sweep_id).count("running") == 0
    assert time.monotonic() - asked < 20  # the page waits for the cluster to close too
    assert RunStore().get_sweep(sweep_id)["status"] == "cancelled"
    assert at.button(key="sweep_resume").label == "Resume"


def test_the_metric_direction_and_target_widgets_refuse_bad_input_and_start_a_maximised_sweep(studio, page):
    """Issue 18: the start form's metric, direction and target; bad input names its field and
    records nothing; a good one starts a sweep that maximises test accuracy."""
    before = len(RunStore().list_sweeps())
    at = page()
    at.selectbox(key="sweep_metric").select("test_accuracy")
    at.text_input(key="sweep_target").input("lots")
    set_up(at, "0.1,0.5")
    assert any("target" in error.value for error in at.error)
    at.text_input(key="sweep_target").input("0.5")
    at.selectbox(key="sweep_direction").select("minimize")
    at.button(key="sweep_start").click()
    at.run()
    assert any("direction" in error.value for error in at.error)
    assert len(RunStore().list_sweeps()) == before  # nothing started
    at.selectbox(key="sweep_direction").select("natural")
    at.button(key="sweep_start").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    sweep_id = at.session_state["sweep_id"]
    assert sweep_runner.wait(sweep_id, 120), "the sweep did not finish"
    snapshot = sweep_runner.snapshot(sweep_id)
    assert (snapshot.metric, snapshot.direction) == ("test_accuracy", "maximize")
    assert all(t.value == t.test_accuracy for t in snapshot.trials if t.status == "finished")
