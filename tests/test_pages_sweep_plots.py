"""The Sweep page's plots of results (AppTest) on a recorded sweep: its journal written with Optuna's
ask-and-tell as a client writes it (no Dask, no training), pruned trials and their reports
included. Every plot draws; the table shows "—" for a missing number and short numbers; the trial
picker follows the snapshot: a new best trial is its first choice at the next run."""

import json
import math

import pytest
from optuna.trial import TrialState

from backprop.runs import RunStore
from backprop.sweep import SweepSpec, create_sweep, open_study
from backprop.sweep.study import RESULT, TrialResult
from studio import session, sweep_runner

pytestmark = pytest.mark.timeout(150)
PLOTS = {"History": "Optimisation history", "Slice": "Slice: test cost", "Contour": "Contour: test cost",
         "Intermediate values": "Intermediate values", "Parallel coordinates": "Parallel coordinates",
         "Scatter": "against", "Importance": "Setting importance: PED-ANOVA"}


@pytest.fixture
def studio(use_studio):
    return use_studio(session.Studio())


def tell(study, spec, cost_of, pruned=False):
    """One trial as the client records it: the pruner's reports, its result, then Optuna told."""
    trial = study.ask({d.name: d.distribution() for d in spec.space})
    cost = cost_of(trial.params)
    for step in (10, 20, 30):
        trial.report(cost * (1 + 10 / step), step)
    status = "pruned" if pruned else "finished"
    trial.set_user_attr(RESULT, TrialResult(status, test_cost=cost, test_accuracy=1 - cost / 2,
                                            train_accuracy=1 - cost / 3, seconds=1.5).to_attrs())
    if pruned:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, cost)
    return trial.number


def recorded_sweep(n=9):
    """A finished random sweep of the learning rate and activation whose test cost rises with the
    learning rate; every 4th trial pruned."""
    store = RunStore()
    base = sweep_runner.playground_base("spiral")
    spec = SweepSpec.build(base, ["learning_rate=1e-3:1", "activation=tanh,relu"], strategy="random",
                           trials=n + 1, pruner="median", iterations=30)
    sweep_id = create_sweep(spec, store, name='<b>rates</b> & "co"')
    study = open_study(sweep_id, spec)
    for i in range(n):
        tell(study, spec, lambda p: 0.2 + 0.05 * (3 + math.log10(p["learning_rate"])), pruned=i % 4 == 3)
    store.update_sweep(sweep_id, status="cancelled")
    return sweep_id, spec, study


def test_every_plot_of_a_recorded_sweep_and_a_current_picker(studio, open_page):
    sweep_id, spec, study = recorded_sweep()
    at = open_page("pages/sweep.py")
    assert at.session_state["sweep_id"] == sweep_id
    table = at.dataframe[0]
    assert table.proto.placeholder == "—"  # a missing number, not "None"
    assert "%.4g" in table.proto.columns and "percent" in table.proto.columns
    assert "sweep_plot" in [radio.key for radio in at.radio]
    drawn = {}
    for plot, title in PLOTS.items():
        at.radio(key="sweep_plot").set_value(plot).run()
        assert not at.exception, [e.value for e in at.exception]
        specs = [chart.proto.spec for chart in at.get("plotly_chart")]
        drawn[plot] = [spec for spec in specs if title in spec]
        assert drawn[plot], f"{plot}: no chart titled {title!r} among {[s[:120] for s in specs]}"
    assert '"pruned (2)"' in drawn["Intermediate values"][0]  # the pruned trials' reports
    title = json.loads(drawn["History"][0])["layout"]["title"]["text"]
    assert title.endswith(" · &lt;b&gt;rates&lt;/b&gt; &amp; &quot;co&quot;")  # the sweep's name, escaped
    importance = drawn["Importance"][0]
    assert "↑ +" in importance  # the test cost rises with the learning rate

    # The picker: the best trial first; a new best (told while the page is open) is first at the next run.
    snapshot = sweep_runner.snapshot(sweep_id)
    picker = next(box for box in at.selectbox if box.label == "Trial (best first)")
    assert picker.value.startswith(f"#{snapshot.best(1)[0].number} ")
    newest = tell(study, spec, lambda p: 0.001)
    at.run()
    picker = next(box for box in at.selectbox if box.label == "Trial (best first)")
    assert picker.value.startswith(f"#{newest} ") and picker.value == picker.options[0]


def test_the_plots_wait_for_the_third_finished_trial(studio, open_page):
    store = RunStore()
    spec = SweepSpec.build(sweep_runner.playground_base("spiral"), ["learning_rate=0.01,0.1,1"],
                           strategy="random", trials=3, iterations=30)
    sweep_id = create_sweep(spec, store)
    study = open_study(sweep_id, spec)
    for _ in range(2):
        tell(study, spec, lambda p: float(p["learning_rate"]))
    store.update_sweep(sweep_id, status="cancelled")
    at = open_page("pages/sweep.py")
    assert at.session_state["sweep_id"] == sweep_id
    assert any("once 3 trials have finished (2 so far)" in caption.value for caption in at.caption)
    assert "sweep_plot" not in [radio.key for radio in at.radio]
