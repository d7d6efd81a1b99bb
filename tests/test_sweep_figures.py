"""The Sweep page's plots and tables (studio.sweep_figures) and which settings mattered
(backprop.sweep.snapshot.setting_importance), on synthetic snapshots: no Dask, no training.

Each plot's traces and axes; parallel coordinates labelled at real values; intermediate values
with the pruned trials; importance named by the evaluator actually used, with the right direction
on a sweep whose test cost rises with one setting and falls with another; a sweep's name escaped;
the trial picker's order; table cells without 'None'; and the figures' build times at 1,000 trials
(printed, not asserted)."""

import importlib.util
import json
import math
import random
import time
import warnings

import numpy as np
import pytest

from backprop.config import preset
from backprop.run import Evaluation, StepRow
from backprop.sweep import SweepSnapshot, SweepSpec, TrialView
from backprop.sweep.snapshot import EVALUATORS, FALLBACK, MIN_FINISHED, setting_importance, spearman
from studio import sweep_figures as sf

VARY = ["learning_rate=1e-4:1", "l2=0:0.01", "activation=sigmoid,tanh,relu", "layers=196,1|64,1|16,8,1"]


def space(vary=VARY):
    return SweepSpec.build(preset("tutorial"), vary, strategy="random", trials=1000).space


def synthetic(n=40, seed=0, statuses=None):
    """A random sweep whose test cost rises with the learning rate (log) and falls with l2: every
    5th trial pruned (after 3 evaluations), the last one running, the others finished."""
    rng = random.Random(seed)
    trials = []
    for i in range(n):
        lr, l2 = 10 ** rng.uniform(-4, 0), rng.uniform(0, 0.01)
        cost = 0.3 + 0.1 * (4 + math.log10(lr)) - 20 * l2 + rng.gauss(0, 0.005)
        status = (statuses or {}).get(i, "running" if i == n - 1 else "pruned" if i % 5 == 0 else "finished")
        ended = status in ("finished", "pruned")
        evaluations = [Evaluation(step, cost * (1 + 2 / (1 + step / 30)), 0.9)
                       for step in range(0, 90 if status == "pruned" else 300, 30)]
        trials.append(TrialView(
            i, {"learning_rate": lr, "l2": l2, "activation": rng.choice(["sigmoid", "tanh", "relu"]),
                "layers": rng.choice([[196, 1], [64, 1], [16, 8, 1]])},
            status, run_id=i + 1, test_cost=cost if ended else None,
            test_accuracy=1 - cost / 2 if ended else None, train_accuracy=0.95 if ended else None,
            seconds=2.5 if ended else None, curve=[StepRow(k, 0.0, 1 / (k + 1)) for k in range(0, 300, 10)],
            evaluations=evaluations, ended_at=0.5 * i if ended else None))
    return SweepSnapshot(1, "running", n, trials, 0.5 * n, [], None, space())


def spec_json(figure):
    """What st.plotly_chart would send (Plotly checks the figure)."""
    import plotly.io
    import plotly.tools

    return plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(figure, validate_figure=True))


# -- numbers and the table -------------------------------------------------------------------------
def test_numbers_are_shown_short_and_missing_cells_never_say_none():
    assert sf.setting_text("learning_rate", 0.04311710058868549) == "0.04312"
    assert sf.setting_text("learning_rate", 0.001) == "0.001"
    assert sf.setting_text("beta2", 0.9999) == "0.9999"  # the settings table's own text when short
    assert sf.setting_text("batch_size", None) == "full" and sf.setting_text("layers", [8, 1]) == "8,1"
    assert sf.metric_text("test accuracy", 0.976) == "97.6%"
    assert sf.metric_text("test cost", 0.0431171) == "0.04312"
    assert sf.metric_text("test cost", None) == sf.MISSING
    snapshot = synthetic(12)
    rows = sf.trials_table(snapshot, text=True)
    cells = [str(value) for row in rows for value in row.values()]
    assert "None" not in cells and "nan" not in cells
    assert rows[0]["status"] == "running" and rows[0]["test cost"] == sf.MISSING
    numbers = sf.trials_table(snapshot)  # numbers stay numbers, shown by the column formats
    assert isinstance(numbers[1]["learning_rate"], float)
    formats = sf.table_formats(snapshot)
    assert formats["learning_rate"] == "%.4g" and formats["test accuracy"] == "percent"
    assert "layers" not in formats  # text, as the settings table writes it


def test_the_trial_picker_lists_the_best_first_and_its_key_follows_the_order():
    snapshot = synthetic(12)
    choices = sf.trial_choices(snapshot)
    best = snapshot.best(1)[0]
    assert choices[0][1] == best.number
    assert f"#{best.number} " in choices[0][0] and "finished" in choices[0][0] and "%" in choices[0][0]
    assert sorted(number for _, number in choices) == list(range(12))
    key = sf.choices_key(choices)
    # A new best trial (the running one finishes lowest): first in the list, and a new key.
    last = snapshot.trials[-1]
    last.status, last.test_cost, last.test_accuracy = "finished", 0.001, 0.999
    newer = sf.trial_choices(snapshot)
    assert newer[0][1] == last.number and sf.choices_key(newer) != key


# -- the plots -------------------------------------------------------------------------------------
def test_no_plot_before_the_third_finished_trial():
    two = synthetic(4, statuses={0: "finished", 1: "finished", 2: "running", 3: "queued"})
    assert len(sf.finished_trials(two)) == 2 < MIN_FINISHED
    assert sf.history_figure(two) is None and sf.slice_figure(two) is None
    assert sf.parallel_coordinates_figure(two) is None and sf.importance(two) is None
    assert sf.contour_figure(two, "learning_rate", "l2") is None
    assert sf.scatter_figure(two, "learning_rate", "test cost") is None


def test_history_best_so_far_by_trial_number_and_by_time():
    snapshot = synthetic(30)
    done = sf.finished_trials(snapshot)
    figure = sf.history_figure(snapshot)
    trials, best = figure["data"]
    assert trials["x"] == [t.number for t in done] and trials["y"] == [t.test_cost for t in done]
    assert best["name"] == "best so far" and best["line"]["shape"] == "hv"
    assert best["y"] == list(np.minimum.accumulate([t.test_cost for t in done]))
    assert figure["layout"]["xaxis"]["title"]["text"] == "trial number"
    assert figure["layout"]["xaxis"]["dtick"] == 5  # whole trial numbers: 0, 5, 10, ... (not 0.5)
    assert sf.history_figure(synthetic(4, statuses={3: "finished"}))["layout"]["xaxis"]["dtick"] == 1
    assert figure["layout"]["yaxis"]["title"]["text"] == "test cost"
    by_time = sf.history_figure(snapshot, "time")
    assert by_time["data"][0]["x"] == sorted(t.ended_at for t in done)
    assert by_time["layout"]["xaxis"]["title"]["text"] == "seconds since the sweep started"
    spec_json(figure)


def test_slice_has_one_panel_per_varied_setting_with_a_log_axis_for_a_log_setting():
    snapshot = synthetic(30)
    figure = sf.slice_figure(snapshot)
    layout = figure["layout"]
    assert [trace["name"] for trace in figure["data"]] == ["learning_rate", "l2", "activation", "layers"]
    assert [trace["xaxis"] for trace in figure["data"]] == ["x", "x2", "x3", "x4"]
    assert layout["xaxis"]["type"] == "log" and layout["xaxis"]["title"]["text"] == "learning_rate"
    assert layout["xaxis2"]["type"] == "linear"
    assert layout["xaxis3"]["type"] == "category"
    assert layout["xaxis3"]["categoryarray"] == ["sigmoid", "tanh", "relu"]  # the sweep's order
    assert layout["xaxis4"]["categoryarray"] == ["196,1", "64,1", "16,8,1"]
    assert layout["yaxis"]["title"]["text"] == "test cost" and layout["yaxis2"]["matches"] == "y"
    done = sf.finished_trials(snapshot)
    assert figure["data"][0]["y"] == [t.test_cost for t in done]
    spec_json(figure)


def test_contour_of_two_settings_interpolates_between_the_trials():
    snapshot = synthetic(60)  # more finished trials than grid cells a side
    figure = sf.contour_figure(snapshot, "learning_rate", "l2")
    contour, dots = figure["data"]
    assert contour["type"] == "contour" and dots["mode"] == "markers"
    assert len(dots["x"]) == len(sf.finished_trials(snapshot))
    z = np.asarray(contour["z"])
    assert z.shape == (len(contour["y"]), len(contour["x"])) == (sf.CONTOUR_GRID, sf.CONTOUR_GRID)
    costs = [t.test_cost for t in sf.finished_trials(snapshot)]
    assert min(costs) <= z.min() and z.max() <= max(costs)  # an average of the trials, never past them
    assert figure["layout"]["xaxis"]["type"] == "log" and figure["layout"]["yaxis"]["title"]["text"] == "l2"
    # A setting without an order: its values as ticks, in the sweep's order.
    categorical = sf.contour_figure(snapshot, "activation", "learning_rate")
    assert categorical["layout"]["xaxis"]["ticktext"] == ["sigmoid", "tanh", "relu"]
    assert sf.contour_figure(snapshot, "l2", "l2") is None
    spec_json(figure)
    spec_json(categorical)


def test_intermediate_values_include_the_pruned_trials_coloured_by_state():
    snapshot = synthetic(30)
    figure = sf.intermediate_figure(snapshot)
    by_name = {trace["name"].split(" (")[0]: trace for trace in figure["data"]}
    assert set(by_name) == {"finished", "pruned", "running"}
    pruned = [t for t in snapshot.trials if t.status == "pruned"]
    assert by_name["pruned"]["name"] == f"pruned ({len(pruned)})"
    assert by_name["pruned"]["line"]["color"] == sf.STATUS_COLOURS["pruned"] != sf.STATUS_COLOURS["finished"]
    xs = by_name["pruned"]["x"]
    assert int(np.isnan(xs).sum()) == len(pruned)  # one gap after each trial
    assert np.nanmax(xs) == 60  # stopped at its third evaluation
    labels = {text for text in by_name["pruned"]["text"] if text}
    assert labels == {f"#{t.number} pruned" for t in pruned}
    # Without test evaluations (a snapshot read without curves) it draws what the pruner was told.
    journal_only = synthetic(6)
    for trial in journal_only.trials:
        trial.intermediate = {e.iteration: e.test_cost for e in trial.evaluations}
        trial.evaluations = []
    assert sf.intermediate_figure(journal_only) is not None
    assert figure["layout"]["xaxis"]["title"]["text"] == "iteration"
    spec_json(figure)


def test_parallel_coordinates_are_labelled_at_real_values_with_tooltips():
    snapshot = synthetic(60)
    figure = sf.parallel_coordinates_figure(snapshot)
    annotations = figure["layout"]["annotations"]
    axes = [a["text"] for a in annotations if a["name"].startswith("axis ")]
    assert axes == ["learning_rate", "l2", "activation", "layers", "test accuracy"]
    ticks = {}
    for a in annotations:
        if a["name"].startswith("tick "):
            ticks.setdefault(a["name"][5:], []).append(a["text"])
    assert {"0.001", "0.01", "0.1"} <= set(ticks["learning_rate"])  # real values, not log10
    assert not any(text.startswith("-") for text in ticks["learning_rate"])
    assert ticks["activation"] == ["sigmoid", "tanh", "relu"]
    assert all(text.endswith("%") for text in ticks["test accuracy"])
    # Tooltips: a marker where each finished trial crosses each axis, the whole trial at its result.
    markers = figure["data"][-1]
    done = sf.finished_trials(snapshot)
    assert markers["mode"] == "markers" and len(markers["x"]) == len(done) * 5
    assert markers["text"][4].startswith(f"#{done[0].number} finished<br>learning_rate ")
    assert markers["text"][0].startswith(f"#{done[0].number} learning_rate ")
    assert any(trace["name"].startswith("pruned (") for trace in figure["data"])
    spec_json(figure)


def test_log_ticks_are_powers_of_ten_or_one_two_five():
    assert sf.log_ticks(-3, 0) == [0.001, 0.01, 0.1, 1.0]
    assert sf.log_ticks(math.log10(0.002), math.log10(0.03)) == pytest.approx([0.002, 0.005, 0.01, 0.02])
    assert sf.log_ticks(math.log10(0.02), math.log10(0.06)) == pytest.approx([0.02, 0.05])


def test_scatter_of_any_two_columns_by_state():
    snapshot = synthetic(30)
    columns = sf.scatter_columns(snapshot)
    assert columns[:4] == ["learning_rate", "l2", "activation", "layers"]
    assert {"test cost", "test accuracy", "train accuracy", "seconds", "trial"} <= set(columns)
    figure = sf.scatter_figure(snapshot, "learning_rate", "test accuracy")
    names = [trace["name"].split(" (")[0] for trace in figure["data"]]
    assert names == ["finished", "pruned"]  # the running trial has no accuracy yet
    assert figure["layout"]["xaxis"]["type"] == "log" and figure["layout"]["yaxis"]["tickformat"] == ".1%"
    assert figure["layout"]["xaxis"]["title"]["text"] == "learning_rate"
    layers = sf.scatter_figure(snapshot, "layers", "trial")
    assert layers["layout"]["xaxis"]["type"] == "category"
    assert len([x for trace in layers["data"] for x in trace["x"]]) == 30  # every trial has both
    spec_json(figure)


def test_for_chart_gives_plotly_arrays_and_the_same_figure():
    snapshot = synthetic(30)
    figure = sf.parallel_coordinates_figure(snapshot)
    before = json.loads(spec_json(figure))
    fast = sf.for_chart(sf.parallel_coordinates_figure(snapshot))
    assert isinstance(fast["data"][-1]["text"], np.ndarray) and isinstance(fast["data"][-1]["y"], np.ndarray)
    after = json.loads(spec_json(fast))
    assert [t["name"] for t in after["data"]] == [t["name"] for t in before["data"]]
    assert after["layout"] == before["layout"]
    curves = sf.for_chart(sf.cost_curves_figure(snapshot))  # a list with gaps stays a list
    assert all(isinstance(trace["x"], np.ndarray) for trace in curves["data"])
    assert sf.for_chart(None) is None


def test_text_a_person_supplied_is_escaped():
    snapshot = synthetic(12)
    name = '<a href="javascript:alert(1)">sweep</a>'
    snapshot.trials[1].reason = "<b>bold</b>"
    figure = sf.history_figure(snapshot, name=name)
    title = figure["layout"]["title"]["text"]
    assert "<a" not in title and "&lt;a href=&quot;javascript:alert(1)&quot;&gt;sweep&lt;/a&gt;" in title
    importance = sf.importance_figure(sf.importance(snapshot), name=name)
    assert "<a" not in importance["layout"]["title"]["text"]
    scatter = sf.scatter_figure(snapshot, "l2", "trial")
    texts = [text for trace in scatter["data"] for text in trace["text"]]
    assert not any("<b>" in text for text in texts) and any("&lt;b&gt;bold" in text for text in texts)


# -- importance ------------------------------------------------------------------------------------
def test_importance_says_which_way_the_test_cost_goes_with_each_setting():
    snapshot = synthetic(80)
    result = setting_importance(snapshot)
    by_name = {item.name: item for item in result.settings}
    assert by_name["learning_rate"].direction == "↑" and by_name["learning_rate"].correlation > 0.5
    assert by_name["l2"].direction == "↓" and by_name["l2"].correlation < -0.3
    assert abs(by_name["activation"].correlation) < 0.3  # chosen at random: no direction to speak of
    assert sum(item.importance for item in result.settings) == pytest.approx(1.0)
    assert [item.importance for item in result.settings] == sorted(
        (item.importance for item in result.settings), reverse=True)
    assert result.trials == len(sf.finished_trials(snapshot))
    figure = sf.importance_figure(result)
    bars = figure["data"][0]
    assert bars["y"][::-1] == [item.name for item in result.settings]  # the most important at the top
    assert by_name["learning_rate"].correlation_text() in bars["text"]
    assert bars["text"][bars["y"].index("learning_rate")].startswith("↑ +")
    assert bars["text"][bars["y"].index("l2")].startswith("↓ -")
    document = json.loads(json.dumps(result.to_dict()))
    assert document["evaluator"] == result.evaluator
    assert document["settings"][0]["direction"] in ("↑", "↓", "")
    assert "learning_rate" in result.text()
    spec_json(figure)


def test_spearman_of_a_rising_and_a_falling_series():
    assert spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_importance_is_named_by_the_evaluator_it_used():
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator

    snapshot = synthetic(40)
    result = setting_importance(snapshot)
    # Chosen explicitly (whatever get_param_importances' default is on this Optuna): PED-ANOVA.
    assert result.evaluator == "PED-ANOVA" and result.fallbacks == ()
    assert result.optuna_version == optuna.__version__
    from backprop.sweep.snapshot import _study_of

    names = [item.name for item in result.settings]
    dimensions = [d for d in snapshot.space if d.name in names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = optuna.importance.get_param_importances(
            _study_of(dimensions, sf.finished_trials(snapshot)), evaluator=PedAnovaImportanceEvaluator(),
            params=[d.name for d in dimensions])
    assert result.shares() == pytest.approx(expected)
    assert sf.importance_figure(result)["layout"]["title"]["text"].startswith(
        f"Setting importance: PED-ANOVA, Optuna {optuna.__version__}, {result.trials} finished trials")


def test_an_evaluator_that_cannot_run_here_falls_back_naming_the_one_used():
    def missing():
        raise ImportError("No module named 'sklearn'")

    def unsupported():
        raise NotImplementedError("not on this Optuna")

    snapshot = synthetic(40)
    result = setting_importance(snapshot, evaluators=(("fANOVA", missing), *EVALUATORS))
    assert result.evaluator == "PED-ANOVA"
    assert result.fallbacks == (("fANOVA", "ImportError: No module named 'sklearn'"),)
    none_works = setting_importance(snapshot, evaluators=(("fANOVA", missing), ("PED-ANOVA", unsupported)))
    assert none_works.evaluator == FALLBACK and len(none_works.fallbacks) == 2
    by_name = {item.name: item for item in none_works.settings}
    total = sum(abs(item.correlation or 0) for item in none_works.settings)
    rate = by_name["learning_rate"]
    assert rate.importance == pytest.approx(abs(rate.correlation) / total)
    assert "|Spearman rho|" in sf.importance_figure(none_works)["layout"]["title"]["text"]
    # fANOVA when PED-ANOVA cannot: it needs scikit-learn (not a requirement of this project).
    fanova = setting_importance(snapshot, evaluators=(("PED-ANOVA", unsupported), EVALUATORS[1]))
    assert fanova.evaluator == ("fANOVA" if importlib.util.find_spec("sklearn") else FALLBACK)


def test_importance_needs_three_finished_trials_and_a_setting_that_took_two_values():
    one_value = synthetic(6)
    for trial in one_value.trials:
        trial.params = {"learning_rate": 0.1, "l2": 0.0, "activation": "tanh", "layers": [8, 1]}
    assert setting_importance(one_value) is None
    assert sf.importance_figure(None) is None


# -- timing ----------------------------------------------------------------------------------------
def test_figures_of_a_1000_trial_sweep_build_quickly(capsys):
    """Build times at 1,000 trials (the median of three), printed: no time is asserted, the
    machine is shared. Then what the page adds to each: for_chart, and Plotly's check and JSON
    (st.plotly_chart's)."""
    snapshot = synthetic(1000)
    builders = {
        "table": lambda: sf.trials_table(snapshot),
        "picker": lambda: sf.trial_choices(snapshot),
        "cost curves": lambda: sf.cost_curves_figure(snapshot),
        "history": lambda: sf.history_figure(snapshot),
        "history (time)": lambda: sf.history_figure(snapshot, "time"),
        "slice": lambda: sf.slice_figure(snapshot),
        "contour": lambda: sf.contour_figure(snapshot, "learning_rate", "l2"),
        "intermediate values": lambda: sf.intermediate_figure(snapshot),
        "parallel coordinates": lambda: sf.parallel_coordinates_figure(snapshot),
        "scatter": lambda: sf.scatter_figure(snapshot, "learning_rate", "test accuracy"),
        "importance (computed)": lambda: sf.importance(snapshot),
    }
    result = sf.importance(snapshot)  # Optuna's import out of the timing
    builders["importance (figure)"] = lambda: sf.importance_figure(result)
    lines = []
    for name, build in builders.items():
        times = []
        for _ in range(3):  # the median of three: the machine is shared
            started = time.perf_counter()
            figure = build()
            times.append(time.perf_counter() - started)
        line = f"{name:22s} {sorted(times)[1] * 1000:7.1f} ms"
        if isinstance(figure, dict):
            checks = []
            for _ in range(3):
                figure = build()
                started = time.perf_counter()
                size = len(spec_json(sf.for_chart(figure)))
                checks.append(time.perf_counter() - started)
            checked = sorted(checks)[1] * 1000
            line += f"   + for_chart, Plotly's check and JSON {checked:6.1f} ms, {size / 1e3:5.0f} kB"
        lines.append(line)
        assert figure is not None
    with capsys.disabled():
        print("\n1,000-trial sweep (800 finished, 199 pruned, 1 running):\n" + "\n".join(lines))
