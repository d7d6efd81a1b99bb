"""The live views' dict specs and the URL state, checked without a browser."""

import base64
import dataclasses

import numpy as np
import pytest

from backprop.config import TrainConfig, preset
from studio import figures
from studio.refresh import refresh_period
from studio.session import TrainingView
from studio.url_state import config_to_query, query_to_config


def fake_view(steps=50, n_layers=3, **changes):
    rng = np.random.RandomState(0)
    iterations = np.arange(steps)
    view = TrainingView(
        run_id=None, status="running", iteration=steps, epoch=steps / 2, seconds=75.0, running=True,
        iterations_per_second=9.87,
        iterations=iterations, costs=np.linspace(0.7, 0.1, steps), last={"cost": 0.1},
        dW_norm=rng.rand(steps, n_layers) + 1e-3, dW_mean_abs=rng.rand(steps, n_layers) * 1e-4,
        update_ratio=rng.rand(steps, n_layers) * 1e-3, unit_health=np.zeros((steps, n_layers - 1, 2)),
        activation="sigmoid",
        evaluations=[{"iteration": 10, "test_cost": 0.5, "test_accuracy": 0.8},
                     {"iteration": 20, "test_cost": 0.4, "test_accuracy": 0.9}],
        markers=[{"iteration": 12, "setting": "learning_rate", "old": 0.1, "new": 0.5}],
        diverged=None, params=[], initial_params=None, optimizer_values={}, l2=0.0, l1=0.0, budget=1000,
        image_shape=None)
    return dataclasses.replace(view, **changes)


def test_downsample_keeps_ends_and_extremes_within_budget():
    x = np.arange(100_000)
    y = np.sin(x / 1000.0)
    y[54_321] = 5.0
    y[77_777] = -5.0
    index = figures.downsample(x, y, max_points=1000)
    assert len(index) <= 1000
    assert index[0] == 0 and index[-1] == len(x) - 1
    assert 54_321 in index and 77_777 in index
    assert np.all(np.diff(index) > 0)
    assert figures.downsample(x[:20], y[:20]).tolist() == list(range(20))


def test_cost_figure_has_one_point_per_step_and_marks_setting_changes():
    figure = figures.cost_figure(fake_view(steps=37), log_y=True)
    train = figure["data"][0]
    assert train["name"] == "train cost" and train["type"] == "scatter" and len(train["x"]) == 37
    assert [t["name"] for t in figure["data"]] == ["train cost", "test cost", "test accuracy"]
    assert figure["layout"]["yaxis"]["type"] == "log"
    assert figure["layout"]["uirevision"] == "cost-log"  # a zoom on linear units is not kept for log
    assert figures.cost_figure(fake_view(steps=37))["layout"]["uirevision"] == "cost"
    assert figure["layout"]["shapes"][0]["x0"] == 12
    assert "learning_rate 0.1→0.5" in figure["layout"]["annotations"][0]["text"]
    assert figure["layout"]["yaxis2"]["overlaying"] == "y"  # test accuracy, on the right
    assert figure["layout"]["margin"]["autoexpand"] is False  # redrawn twice a second: one layout pass
    view = fake_view(steps=5, evaluations=[])
    assert "yaxis2" not in figures.cost_figure(view)["layout"]  # no empty accuracy axis before a test


def test_cost_figure_is_bounded_for_long_runs_and_shows_nan_as_gaps():
    view = fake_view(steps=50_000)
    view.costs[100] = np.nan
    figure = figures.cost_figure(view)
    assert len(figure["data"][0]["x"]) <= figures.MAX_POINTS


def test_gradient_and_ratio_figures_have_lines_per_layer_on_log_axes():
    view = fake_view(n_layers=4)
    gradients = figures.gradient_figure(view)  # one measure at a time: mean |dW| (per weight) by default
    assert len(gradients["data"]) == 4 and gradients["layout"]["yaxis"]["type"] == "log"
    assert [t["name"] for t in gradients["data"]] == ["layer 1", "layer 2", "layer 3", "layer 4"]
    assert gradients["layout"]["yaxis"]["title"]["text"] == "mean |dW|"
    assert list(gradients["data"][3]["y"]) == list(view.dW_mean_abs[:, 3])
    norms = figures.gradient_figure(view, measure="norm")
    assert norms["layout"]["yaxis"]["title"]["text"] == "‖dW‖" and list(norms["data"][0]["y"]) == list(
        view.dW_norm[:, 0])
    assert gradients["layout"]["uirevision"] != norms["layout"]["uirevision"]  # a switch rescales the axis
    ratio = figures.ratio_figure(view)
    assert [t["name"] for t in ratio["data"]] == ["layer 1", "layer 2", "layer 3", "layer 4"]


def test_few_points_show_markers_so_one_step_is_visible():
    one = fake_view(steps=1)
    for figure in (figures.cost_figure(one), figures.gradient_figure(one), figures.ratio_figure(one)):
        assert figure["data"][0]["mode"] == "lines+markers" and len(figure["data"][0]["x"]) == 1
    assert figures.cost_figure(fake_view(steps=figures.MARKER_POINTS + 1))["data"][0]["mode"] == "lines"
    # Test results come every eval_every steps: markers while few, then a plain line (each marker is
    # an element in the browser, and a long run has thousands of tests).
    many = fake_view(steps=10, evaluations=[{"iteration": i, "test_cost": 0.5, "test_accuracy": 0.9}
                                            for i in range(figures.MARKER_POINTS + 1)])
    assert [t["mode"] for t in figures.cost_figure(many)["data"]] == ["lines+markers", "lines", "lines"]


def test_test_results_of_a_long_run_are_downsampled_keeping_the_last():
    view = fake_view(steps=10, evaluations=[{"iteration": 100 * i, "test_cost": 1 / (i + 1),
                                             "test_accuracy": 0.5} for i in range(20_000)])
    view.evaluations[7_777]["test_cost"] = 9.0  # a spike stays visible
    _, test_cost, accuracy = figures.cost_figure(view)["data"]
    assert len(test_cost["x"]) <= figures.MAX_POINTS and len(accuracy["x"]) == len(test_cost["x"])
    assert test_cost["x"][-1] == 100 * 19_999 and 9.0 in test_cost["y"]


def test_charts_before_the_first_step_have_fixed_axes_a_hint_and_a_trace():
    empty = fake_view(steps=0, evaluations=[], markers=[])
    for figure in (figures.cost_figure(empty), figures.cost_figure(empty, log_y=True),
                   figures.gradient_figure(empty), figures.ratio_figure(empty)):
        assert figure["data"] and len(figure["data"][0]["x"]) == 0  # Plotly 7.1 fails on no traces
        layout = figure["layout"]
        assert layout["xaxis"]["range"] == [0, 10] and len(layout["yaxis"]["range"]) == 2
        assert any("press <b>Train</b>" in a["text"] for a in layout["annotations"])
    assert figures.cost_figure(empty, log_y=True)["layout"]["yaxis"]["range"] == [-2, 0]
    assert "range" not in figures.cost_figure(fake_view(steps=3))["layout"]["xaxis"]


def test_tiles_one_per_unit_with_gaps():
    W = np.arange(5 * 784, dtype=float).reshape(5, 784)
    grid, unit_at = figures.tile_grid(W, (28, 28))
    assert grid.shape == (2 * 29 - 1, 3 * 29 - 1)
    np.testing.assert_array_equal(grid[29:57, 29:57], W[4].reshape(28, 28))
    assert unit_at[30, 30] == 4 and unit_at[28, 0] == -1 and np.isnan(grid[28, 0])


def test_rgb_is_diverging_and_centred_at_zero():
    rgb = figures.to_rgb(np.array([[-2.0, 0.0, 2.0, np.nan]]))
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
    blue, white, red, gap = rgb[0]
    assert blue[2] > blue[0] and red[0] > red[2]
    assert min(white) > 230 and tuple(gap) == figures.GAP_COLOUR
    assert figures.weights_image(np.ones((3, 784)), (28, 28)).shape[2] == 3


def decode(spec):
    dtype = {"f4": np.float32, "i2": np.int16, "i4": np.int32}[spec["dtype"]]
    values = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=dtype)
    return values.reshape([int(n) for n in spec["shape"].split(",")]) if "shape" in spec else values


def test_interactive_heatmap_hover_names_unit_and_pixel():
    W = np.random.RandomState(0).randn(4, 784)
    figure = figures.weights_heatmap(W, (28, 28), name="W1")
    trace = figure["data"][0]
    assert trace["zmid"] == 0 and trace["zmin"] == -trace["zmax"]
    z, custom = decode(trace["z"]), decode(trace["customdata"])
    assert z.shape == (57, 57) and np.isnan(z[28, 0])
    np.testing.assert_allclose(z[29:, 29:], W[3].reshape(28, 28), rtol=1e-6)
    assert custom[0, 0].tolist() == [1, 0] and custom[0, 5].tolist() == [1, 5]
    assert custom[30, 31].tolist() == [4, 1 * 28 + 2]
    assert "unit" in trace["hovertemplate"] and "pixel" in trace["hovertemplate"]
    matrix = figures.weights_heatmap(np.ones((3, 5)), (28, 28), name="W2")["data"][0]
    assert decode(matrix["z"]).shape == (3, 5) and decode(matrix["customdata"])[2, 4].tolist() == [3, 5]


def test_histogram_counts_every_value_on_shared_bins():
    now, initial = np.random.RandomState(1).randn(1000), np.random.RandomState(2).randn(500)
    figure = figures.histogram_figure(now, initial, bins=20)
    init_trace, now_trace = figure["data"]
    assert init_trace["x"] == now_trace["x"] and len(now_trace["x"]) == 20
    assert sum(now_trace["y"]) == 1000 and sum(init_trace["y"]) == 500


def test_status_line_reads_iteration_speed_and_accuracy():
    text = figures.status_text(fake_view(steps=42))
    assert text.startswith("iteration 42 · epoch 21.00 · 9.9 it/s · elapsed 1:15")
    assert "cost 0.1000" in text and "test accuracy 90.00%" in text
    assert "paused" in figures.status_text(fake_view(running=False))
    assert "iteration 0" in figures.status_text(None)


def test_vanishing_note_only_for_deep_nets_with_tiny_first_layer_gradients():
    view = fake_view(n_layers=4)
    view.dW_mean_abs[-1] = [1e-6, 1e-5, 1e-4, 1e-2]
    assert "Vanishing gradients" in figures.vanishing_note(view)
    view.dW_mean_abs[-1] = [1e-3, 1e-3, 1e-3, 1e-3]
    assert figures.vanishing_note(view) is None


def test_the_gradient_chart_agrees_with_its_note():
    """Issue 20: the deep sigmoid net's note says mean |dW1| is 33x smaller, while ‖dW1‖ (784 x 392
    weights) sits on top. The chart shows one measure, the note's by default, its layer highlighted;
    on ‖dW‖ the note says why layer 1 is on top there."""
    view = fake_view(n_layers=4)
    view.dW_mean_abs[-1] = [3e-6, 1e-5, 3e-5, 1e-4]
    view.dW_norm[-1] = [9.0, 2.0, 1.0, 0.5]
    assert figures.vanishing_layer(view) == (1, pytest.approx(100 / 3))
    note = figures.vanishing_note(view)
    assert "per weight, mean |dW1| is 33× smaller" in note and "layer 1 is highlighted" in note
    assert "‖dW‖" not in note
    figure = figures.gradient_figure(view, highlight=1)
    first, *others = figure["data"]
    assert first["name"] == "layer 1 (the note's)" and first["line"]["width"] == 4
    assert all(t["line"]["width"] < 4 and t["opacity"] < 1 for t in others)
    (label,) = figure["layout"]["annotations"]
    assert label["text"] == "layer 1" and label["y"] == pytest.approx(np.log10(3e-6))
    assert min(range(4), key=lambda l: view.dW_mean_abs[-1, l]) == 0  # the highlighted line is the lowest
    on_norms = figures.vanishing_note(view, "norm")
    assert on_norms.startswith(note) and "grows with a layer's number of weights" in on_norms


def test_url_round_trip_writes_only_changes():
    assert config_to_query(preset("tutorial")) == {}
    deep = preset("tutorial-deep")
    query = config_to_query(deep, demo=True)
    assert query == {"layers": "392,196,98,1", "demo": "1"}
    config, demo, problems = query_to_config(query)
    assert config == deep and demo and problems == []
    ten = preset("mnist10")
    assert query_to_config(config_to_query(ten))[0] == ten


def test_url_bad_values_are_dropped_with_a_named_reason():
    config, demo, problems = query_to_config({"learning_rate": "fast", "layers": "64,1", "seed": "-3"})
    assert config.layers == [64, 1] and config.learning_rate == TrainConfig().learning_rate
    assert config.seed == TrainConfig().seed and not demo
    assert any(p.startswith("learning_rate:") for p in problems)
    assert any(p.startswith("seed:") for p in problems)
    config, _, problems = query_to_config({"digits": "all"})  # layers [196, 1] do not fit 10 classes
    assert problems and config == TrainConfig().validated()


def test_refresh_period_keeps_required_rates_and_slows_heavy_views():
    assert refresh_period(2.0, 0.05) == 2.0  # 2.5% of the period: as set
    assert refresh_period(2.0, 0.5) == 5.0  # drawing may take 10% of the period
    assert refresh_period(0.5, 0.1, keep_base_up_to=0.5) == 0.5  # cost chart stays at 2 Hz
    assert refresh_period(0.5, 0.4, keep_base_up_to=0.5) == 0.8  # unless it truly cannot


def test_downsample_keeps_a_point_where_a_stretch_is_not_finite():
    y = np.linspace(1.0, 0.1, 10_000)
    y[4_000:6_000] = np.nan
    y[7_000] = np.inf
    index = figures.downsample(np.arange(10_000), y, max_points=500)
    assert len(index) <= 500 and index[0] == 0 and index[-1] == 9_999
    assert np.any((index >= 4_000) & (index < 6_000))  # the gap still shows
    assert 7_000 not in index  # an Inf is never picked as a bucket's extreme


def test_live_weight_image_travels_inline_at_its_size_and_names_itself():
    import base64
    import io

    from PIL import Image

    rgb = figures.weights_image(np.random.default_rng(0).normal(size=(16, 784)), (28, 28))
    tag = figures.image_html(rgb, 300, alt='W1 "live"')
    src = tag.split('src="', 1)[1].split('"', 1)[0]
    assert src.startswith("data:image/jpeg;base64,")
    picture = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    assert picture.size == (rgb.shape[1], rgb.shape[0])
    assert f'width="300" height="{round(300 * rgb.shape[0] / rgb.shape[1])}"' in tag
    assert 'alt="W1 &quot;live&quot;"' in tag
